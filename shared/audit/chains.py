"""The chains pass: each version links to the digest of the version before it, in index
order, for the entities whose versions the entries pass could not link as it read them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import text

from shared.audit import reads, versions
from shared.audit.state import AuditState, Row


def rechecked(state: AuditState, start: int, end: int) -> set[str] | None:
    """Chains of the entities whose versions the entries pass did not read in order
    (``irregular``): their version rows in [start, end) read again and checked as a whole.
    Returns every entity with a version in range; from 0 (a full audit, whose later passes
    take every entity) None, not a set of a million ids held to the run's end."""
    if state.irregular:
        rows = state.conn.execute(
            text(
                "SELECT idx, kind, CAST(entity_id AS text), version, digest, prev_digest "
                "FROM log_entries WHERE tenant_id = current_setting('plant.tenant') "
                "AND entry_type = 'version' AND entity_id = ANY(CAST(:ids AS uuid[])) "
                "AND idx >= :start AND idx < :end ORDER BY idx"
            ),
            {"ids": reads.array(state.irregular), "start": start, "end": end},
        ).all()
        state.rows_read += len(rows)
        checked(
            state,
            (
                Row(int(r[0]), "version", r[1], r[2], int(r[3]), b"", bytes(r[4]), b"", _opt(r[5]))
                for r in rows
            ),
        )
    return set(state.latest) | state.irregular if start else None


def _opt(value: bytes | None) -> bytes | None:
    """A nullable bytea column as bytes, NULL as None."""
    return bytes(value) if value is not None else None


def checked(state: AuditState, rows: Iterable[Row]) -> None:
    """Each version links to the digest of the version before it, in index order."""
    by_entity: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        if row.entry_type == "version":
            by_entity[row.entity_id].append(row)
    outside = reads.digests(
        state,
        {
            (entity_id, row.version - 1)
            for entity_id, rows_of in by_entity.items()
            for row in rows_of
            if row.version > 1 and not any(r.version == row.version - 1 for r in rows_of)
        },
    )
    for entity_id, rows_of in by_entity.items():
        rows_of.sort(key=lambda r: r.index)
        for row in rows_of:
            if row.index in state.reported:
                continue
            expected = _digest_in(rows_of, row.version - 1)
            if expected is None:
                expected = outside.get((entity_id, row.version - 1))
            if row.version > 1 and expected is None:
                continue  # the predecessor is missing: reported as missing already
            if row.prev_digest != expected:
                versions.chain_broken(state, row.kind, entity_id, row.version, row.index)
        _in_order(state, entity_id, rows_of)


def _in_order(state: AuditState, entity_id: str, rows: list[Row]) -> None:
    """An entity's versions, in index order, must be in version order too."""
    ordered = [r.version for r in rows]
    if ordered != sorted(ordered):
        first = next(r for r, s in zip(rows, sorted(ordered), strict=True) if r.version != s)
        if first.index not in state.reported:
            state.add(
                "reordered",
                f"versions of {entity_id} are out of log order",
                entity_type=first.kind,
                entity_id=entity_id,
                version=first.version,
                log_index=first.index,
            )


def _digest_in(rows: list[Row], version: int) -> bytes | None:
    """The digest of ``version`` among these rows of one entity, if read."""
    if version < 1:
        return None
    return next((r.digest for r in rows if r.version == version), None)
