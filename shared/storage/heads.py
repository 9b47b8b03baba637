"""Entity heads: each entity's current version, status and uniqueness key.

A projection of the ledger kept for lookups, listing and uniqueness (the write functions
check the readings of a key against live entities' heads: migration 0010); the ledger stays
the source of truth.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class Head:
    entity_id: str
    kind: str
    version: int
    status: str
    name: str
    first_index: int
    log_index: int


_COLUMNS = "CAST(entity_id AS text), kind, version, status, name, first_index, log_index"


def get(conn: Connection, entity_id: str, *, lock: bool = False) -> Head | None:
    """The head of one entity; ``lock`` takes its row lock for an amendment."""
    row = conn.execute(
        text(
            f"SELECT {_COLUMNS} FROM entity_heads WHERE entity_id = CAST(:id AS uuid)"
            + (" FOR UPDATE" if lock else "")
        ),
        {"id": entity_id},
    ).first()
    return Head(*row) if row else None


def referenced(conn: Connection, ids: list[str], *, lock: bool = True) -> list[tuple[Head, bytes]]:
    """Heads and current bodies of referenced entities, share-locked (unless ``lock`` is
    false: a read-only snapshot) so that none can be deprecated or suspended until this
    transaction ends."""
    if not ids:
        return []
    rows = conn.execute(
        text(
            "SELECT CAST(h.entity_id AS text), h.kind, h.version, h.status, h.name, "
            "h.first_index, h.log_index, e.body "
            "FROM entity_heads h JOIN log_entries e "
            "ON e.tenant_id = h.tenant_id AND e.idx = h.log_index "
            "WHERE h.entity_id = ANY(CAST(:ids AS uuid[])) "
            "ORDER BY h.entity_id" + (" FOR SHARE OF h" if lock else "")
        ),
        {"ids": sorted(ids)},
    ).all()
    return [(Head(*r[:7]), bytes(r[7])) for r in rows]


def page(
    conn: Connection,
    kind: str,
    *,
    status: str | None,
    category: str | None,
    after: int,
    limit: int,
) -> list[tuple[Head, bytes, bytes, bytes]]:
    """One page of current versions in creation order (keyset on the first log index)."""
    rows = conn.execute(
        text(
            "SELECT CAST(h.entity_id AS text), h.kind, h.version, h.status, h.name, "
            "h.first_index, h.log_index, e.body, e.leaf_hash, e.digest "
            "FROM entity_heads h JOIN log_entries e "
            "ON e.tenant_id = h.tenant_id AND e.idx = h.log_index "
            "WHERE h.kind = :kind AND h.first_index > :after "
            "AND (CAST(:status AS text) IS NULL OR h.status = :status) "
            "AND (CAST(:category AS text) IS NULL OR h.category = :category) "
            "ORDER BY h.first_index LIMIT :limit"
        ),
        {"kind": kind, "status": status, "category": category, "after": after, "limit": limit},
    ).all()
    return [(Head(*r[:7]), bytes(r[7]), bytes(r[8]), bytes(r[9])) for r in rows]
