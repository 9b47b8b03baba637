"""Reading heads for the heads pass: by ranges of first index, outside the log, or by id;
and what the ledger says of the versions heads point at, read again."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import Any

from shared.audit import reads
from shared.audit.state import AuditState
from shared.storage import copyread, tree

# Every column of a head the ledger determines (created_at and updated_at aside: request
# times, not part of what a version says about its entity).
_HEADS = (
    "SELECT version, log_index, first_index, CAST(entity_id AS text), kind, status, name, "
    "category, unique_key FROM entity_heads WHERE tenant_id = current_setting('plant.tenant')"
)
_HEAD_COLUMNS = (
    copyread.INT4,
    copyread.INT8,
    copyread.INT8,
    copyread.raw(36),
    copyread.TEXT,
    copyread.TEXT,
    copyread.TEXT,
    copyread.TEXT,
    copyread.TEXT,
)
# A head as read: (version, log_index, first_index, entity id, kind, status, name, category,
# unique_key); the entity id is bytes as COPY reads it, text once set aside
_Head = tuple[int, int, int | None, str, str, str, str, str | None, str | None]


def _created(state: AuditState, start: int, end: int) -> Iterator[list[tuple[Any, ...]]]:
    """Heads whose first index is in [start, end): one statement per ``copyread.RANGE``
    indexes (each inside the timeout, reading the heap in the order it was written)."""
    for low in range(start, end, copyread.RANGE):
        high = min(end, low + copyread.RANGE)
        yield from copyread.copy_batches(
            state.conn,
            _HEADS + f" AND first_index >= {copyread.int_literal(low)} "
            f"AND first_index < {copyread.int_literal(high)}",
            _HEAD_COLUMNS,
        )


def _outside(state: AuditState, size: int) -> Iterator[list[tuple[Any, ...]]]:
    """Heads whose first index is outside a log of ``size`` entries (NULL, negative or past
    it): never written by the registry, so found and checked all the same."""
    yield from copyread.copy_batches(
        state.conn,
        _HEADS + " AND (first_index IS NULL OR first_index < 0 "
        f"OR first_index >= {copyread.int_literal(size)})",
        _HEAD_COLUMNS,
    )


def _some(
    state: AuditState, entity_ids: set[str], created_from: int | None
) -> Iterator[list[tuple[Any, ...]]]:
    """The heads of ``entity_ids``, plus, given ``created_from``, those created from it on
    and any outside the log (as a full audit reads them); the ids not found there (older
    entities, or a head whose first index was rewritten) by id, ``reads.by_ids``."""
    seen: set[bytes] = set()
    if created_from is not None:
        size = tree.log_size(state.conn)
        for batch in chain(_created(state, created_from, size), _outside(state, size)):
            seen.update(head[3] for head in batch)
            yield batch
    rest = [i for i in entity_ids if i.encode() not in seen]
    found = reads.by_ids(state, _HEADS + " AND entity_id = ANY(CAST(:ids AS uuid[]))", rest)
    yield [(*r[:3], r[3].encode(), *r[4:]) for r in found]


def _versions_at_heads(
    state: AuditState, entity_ids: set[str]
) -> dict[str, tuple[int, bytes, str]]:
    """(version, body, entry type) of the entry each head points at."""
    rows = reads.by_ids(
        state,
        "SELECT CAST(h.entity_id AS text), e.version, e.body, e.entry_type "
        "FROM entity_heads h JOIN log_entries e "
        "ON e.tenant_id = h.tenant_id AND e.idx = h.log_index "
        "WHERE h.tenant_id = current_setting('plant.tenant') "
        "AND h.entity_id = ANY(CAST(:ids AS uuid[]))",
        entity_ids,
    )
    state.rows_read += len(rows)
    return {r[0]: (int(r[1]), bytes(r[2]), r[3]) for r in rows}


def _version_bounds(state: AuditState, entity_ids: set[str]) -> dict[str, tuple[int, int | None]]:
    """Per entity, its newest version number in the ledger and the index of its version 1
    (None if there is none)."""
    rows = reads.by_ids(
        state,
        "SELECT CAST(entity_id AS text), max(version), min(idx) FILTER (WHERE version = 1) "
        "FROM log_entries WHERE tenant_id = current_setting('plant.tenant') "
        "AND entry_type = 'version' AND entity_id = ANY(CAST(:ids AS uuid[])) "
        "GROUP BY entity_id",
        entity_ids,
    )
    state.rows_read += len(rows)
    return {r[0]: (int(r[1]), None if r[2] is None else int(r[2])) for r in rows}
