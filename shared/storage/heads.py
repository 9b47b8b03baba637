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


@dataclass(frozen=True)
class Filter:
    """What a listing asks for: a kind and, each optional, a status, a category, a name
    prefix (``q``, matched after folding: see ``_NAME_PREFIX``) and an exact tag."""

    kind: str
    status: str | None = None
    category: str | None = None
    q: str | None = None
    tag: str | None = None


# A name matches ``q`` when its folded form (``plant_fold_name``: NFKC, then lower case)
# starts with q's folded form. ``name_folded`` is in code point order (COLLATE "C"), so that
# prefix is one range of its index: from the folded q up to ``plant_prefix_end`` of it (a q
# made only of U+10FFFF has no end and matches nothing); ``starts_with`` states the match.
_NAME_PREFIX = (
    'h.name_folded >= plant_fold_name(:q) COLLATE "C" '
    'AND h.name_folded < plant_prefix_end(plant_fold_name(:q)) COLLATE "C" '
    "AND starts_with(h.name_folded, plant_fold_name(:q))"
)
# A tag is matched exactly, through entity_tags (one row per tag of each head).
_HAS_TAG = (
    "h.entity_id IN (SELECT t.entity_id FROM entity_tags t WHERE t.kind = :kind AND t.tag = :tag)"
)


def _where(wanted: Filter) -> tuple[str, dict[str, object]]:
    """The WHERE clause of a listing (only the filters it has: each served by an index)."""
    clauses = ["h.kind = :kind"]
    if wanted.status is not None:
        clauses.append("h.status = :status")
    if wanted.category is not None:
        clauses.append("h.category = :category")
    if wanted.q is not None:
        clauses.append(_NAME_PREFIX)
    if wanted.tag is not None:
        clauses.append(_HAS_TAG)
    params = {
        "kind": wanted.kind,
        "status": wanted.status,
        "category": wanted.category,
        "q": wanted.q,
        "tag": wanted.tag,
    }
    return " AND ".join(clauses), {k: v for k, v in params.items() if v is not None}


def page_sql(wanted: Filter) -> tuple[str, dict[str, object]]:
    """The statement of one page (``:after`` and ``:limit`` left to bind), for ``page`` and
    for the test that reads its plan."""
    where, params = _where(wanted)
    return (
        "SELECT CAST(h.entity_id AS text), h.kind, h.version, h.status, h.name, "
        "h.first_index, h.log_index, e.body, e.leaf_hash, e.digest "
        "FROM entity_heads h JOIN log_entries e "
        "ON e.tenant_id = h.tenant_id AND e.idx = h.log_index "
        f"WHERE {where} AND h.first_index > :after "
        "ORDER BY h.first_index LIMIT :limit"
    ), params


def page(
    conn: Connection, wanted: Filter, *, after: int, limit: int
) -> list[tuple[Head, bytes, bytes, bytes]]:
    """One page of current versions in creation order (keyset on the first log index)."""
    sql, params = page_sql(wanted)
    rows = conn.execute(text(sql), {**params, "after": after, "limit": limit}).all()
    return [(Head(*r[:7]), bytes(r[7]), bytes(r[8]), bytes(r[9])) for r in rows]


def count(conn: Connection, wanted: Filter) -> int:
    """How many heads match ``wanted`` (every page's, not one page's): counted in the index
    that serves the filter, without reading a logged body."""
    where, params = _where(wanted)
    return int(
        conn.execute(
            text(f"SELECT count(*) FROM entity_heads h WHERE {where}"), params
        ).scalar_one()
    )
