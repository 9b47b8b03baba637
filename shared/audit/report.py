"""The single-entity report: every version and certificate of one entity checked now, by
the same checks as the passes, without a run."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared.audit import certificates, chains, heads, reads, versions
from shared.audit.state import AuditState, Row
from shared.errors import NotFound
from shared.integrity import merkle
from shared.rules import path_params
from shared.rules.kinds import resolve_kind
from shared.security.principal import Principal
from shared.storage import heads as stored_heads
from shared.storage import tree
from shared.storage.engine import database


def entity_report(principal: Principal, slug: str, raw_id: str) -> dict[str, Any]:
    """One entity's tamper report: every version and certificate of it, checked now."""
    principal.require("auditor")
    kind = resolve_kind(slug)
    entity_id = path_params.uuid(raw_id)
    with database().transaction(principal.tenant) as conn:
        head = stored_heads.get(conn, entity_id)
        if head is None or head.kind != kind.type:
            raise NotFound(f"no {kind.type} {entity_id}")
        # its chain is checked as a whole, below
        state = AuditState(conn, principal.tenant, irregular={entity_id})
        latest = tree.latest_checkpoint(conn)
        # two queries whatever the number of versions (not two per entry)
        rows = _entity_rows(conn, entity_id)
        leaves = reads.stored_leaves_at(state, (r.index for r in rows)) if rows else {}
        mismatched = []
        for r in rows:
            stored = leaves.get(r.index)
            leaf = merkle.leaf_hash(r.body)
            if stored is not None and stored != leaf:
                mismatched.append((r, leaf))
            else:
                versions.column_check(state, r, leaf)
        versions.classify(state, mismatched, {})
        chains.checked(state, rows)
        certificates.checked(state, rows)
        heads.checked(state, {entity_id})
    return {
        "entity_type": kind.type,
        "entity_id": entity_id,
        "entries": len(rows),
        "sealed": sum(1 for r in rows if latest and r.index < latest.size),
        "findings": [f.as_dict() for f in state.findings],
    }


def _entity_rows(conn: Connection, entity_id: str) -> list[Row]:
    """Every entry (versions and certificates) of one entity, in log order, in one query."""
    result = conn.execute(
        text(
            "SELECT idx, entry_type, kind, CAST(entity_id AS text), version, body, digest, "
            "leaf_hash, prev_digest FROM log_entries "
            "WHERE tenant_id = current_setting('plant.tenant') "
            "AND entity_id = CAST(:id AS uuid) ORDER BY idx"
        ),
        {"id": entity_id},
    )
    return [
        Row(
            int(r[0]),
            r[1],
            r[2],
            r[3],
            int(r[4]),
            bytes(r[5]),
            bytes(r[6]),
            bytes(r[7]),
            bytes(r[8]) if r[8] is not None else None,
        )
        for r in result
    ]
