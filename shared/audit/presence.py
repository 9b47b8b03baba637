"""Rows the ledger implies must exist: every entity the log holds has a head in its tenant
(a head deleted, or moved to another tenant, hides the entity from the API)."""

from __future__ import annotations

from collections.abc import Set as AbstractSet

from sqlalchemy import text

from shared.audit import reads
from shared.audit.state import AuditState

_HEAD_IDS = (
    "SELECT CAST(entity_id AS text) FROM entity_heads "
    "WHERE tenant_id = current_setting('plant.tenant')"
)


def heads(state: AuditState, entity_ids: set[str] | None) -> None:
    """Each entity read by the entries pass (``entity_ids`` None: all of them, a full audit;
    else these) has a head. A full audit first counts the heads (an index-only scan) and
    reads their ids only when the count falls short."""
    latest = state.latest
    # a full audit's: the summaries' own keys, not a copy of a million ids
    wanted: AbstractSet[str] = (
        latest.keys() if entity_ids is None else {i for i in entity_ids if i in latest}
    )
    if not wanted:
        return
    if entity_ids is None:
        count = state.conn.execute(text(f"SELECT count(*) FROM ({_HEAD_IDS}) AS h")).scalar_one()
        if int(count) == len(wanted):
            return  # one head an entity (heads of no entity are named by the heads pass)
        found = {r[0] for r in state.conn.execute(text(_HEAD_IDS))}
    else:
        query = _HEAD_IDS + " AND entity_id = ANY(CAST(:ids AS uuid[]))"
        found = {r[0] for r in reads.by_ids(state, query, wanted)}
    state.rows_read += len(found)
    for entity_id in sorted(wanted - found):
        known = latest[entity_id]
        state.add(
            "missing",
            f"the log holds {known.kind} {entity_id} but it has no head",
            section="entity_heads",
            entity_type=known.kind,
            entity_id=entity_id,
            version=known.version,
            log_index=known.log_index,
        )
