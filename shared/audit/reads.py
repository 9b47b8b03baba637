"""Reads of the ledger that several passes make: stored leaf hashes, version digests, and
rows looked up by entity id, each in as few statements as the index allows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import text

from shared.audit.state import AuditState

_BY_ID = 1000  # ids looked up per statement


def array(items: Iterable[str]) -> str:
    """A PostgreSQL array literal of ids (the text of uuid columns) or integers, sent as one
    text parameter: pg8000 would convert a list element by element. Kept in order, so that
    arrays unnested side by side stay aligned."""
    return "{" + ",".join(items) + "}"


def stored_leaves(state: AuditState, start: int, end: int) -> dict[int, bytes]:
    """The stored level-0 hashes of [start, end) that are there, by index."""
    return _leaves(state, "idx >= :start AND idx < :end", {"start": start, "end": end})


def stored_leaves_at(state: AuditState, indices: Iterable[int]) -> dict[int, bytes]:
    """The stored level-0 hashes of these indexes that are there, by index, in one query."""
    return _leaves(
        state,
        "idx = ANY(CAST(:indices AS bigint[]))",
        {"indices": array(str(i) for i in indices)},
    )


def _leaves(state: AuditState, which: str, params: dict[str, Any]) -> dict[int, bytes]:
    """Level-0 hashes of the indexes ``which`` selects, by index."""
    result = state.conn.execute(
        text(
            "SELECT idx, hash FROM log_nodes WHERE tenant_id = current_setting('plant.tenant') "
            f"AND level = 0 AND {which}"
        ),
        params,
    ).all()
    state.rows_read += len(result)
    return {int(r[0]): bytes(r[1]) for r in result}


def digests(state: AuditState, wanted: set[tuple[str, int]]) -> dict[tuple[str, int], bytes]:
    """The stored digests of these (entity, version) pairs, in one query."""
    wanted = {(e, v) for e, v in wanted if v >= 1}
    if not wanted:
        return {}
    pairs = sorted(wanted)
    rows = state.conn.execute(
        text(
            "SELECT CAST(e.entity_id AS text), e.version, e.digest FROM log_entries e "
            "JOIN unnest(CAST(:ids AS uuid[]), CAST(:versions AS integer[])) AS w(id, v) "
            "ON e.entity_id = w.id AND e.version = w.v "
            "WHERE e.tenant_id = current_setting('plant.tenant') AND e.entry_type = 'version'"
        ),
        {"ids": array(p[0] for p in pairs), "versions": array(str(p[1]) for p in pairs)},
    ).all()
    state.rows_read += len(rows)
    return {(r[0], int(r[1])): bytes(r[2]) for r in rows}


def by_ids(state: AuditState, query: str, entity_ids: Iterable[str]) -> list[Any]:
    """The rows of ``query`` (which takes ``:ids``), ``_BY_ID`` ids a statement, so that each
    lookup probes an index: asked for ten thousand ids at once, the server scanned every head
    instead."""
    ordered = sorted(entity_ids)
    rows: list[Any] = []
    for at in range(0, len(ordered), _BY_ID):
        rows += state.conn.execute(text(query), {"ids": array(ordered[at : at + _BY_ID])}).all()
    return rows
