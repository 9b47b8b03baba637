"""Storing and ranking skill vectors in ``skill_embeddings`` (migration 0017).

Derived data: written by the refresh (batch path, Cloud Scheduler, after each seal), never by
a skill's create or amend, never hashed or logged. Every statement runs as the application
role inside the tenant's transaction (``plant.tenant`` set), so row-level security keeps each
tenant to its own vectors; queries also name the tenant so the planner can use the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared.registry.embeddings import MODEL_ID, vector_literal
from shared.storage import heads

EXTENSION = "vector"
#: Candidates the HNSW scan keeps (pgvector's ``hnsw.ef_search``, default 40). Row-level
#: security and the status/category filters apply after the scan (pgvector 0.6 has no
#: iterative scan), so a larger list keeps ``limit`` rows for a tenant with a small share of
#: the index; it costs recall-proportional time, not a scan.
EF_SEARCH = 200


def unavailable(conn: Connection) -> str | None:
    """Why similar-skill search cannot run on this database (for a 501 detail), or None."""
    if conn.execute(text("SELECT to_regclass('public.skill_embeddings')")).scalar_one():
        return None
    installed = conn.execute(
        text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = :e)"), {"e": EXTENSION}
    ).scalar_one()
    if not installed:
        return (
            f"the PostgreSQL extension '{EXTENSION}' (pgvector) is not installed on this "
            "database server, so similar-skill search is not available here"
        )
    return "the skill_embeddings table is missing: run `plant migrate`"


def store(
    conn: Connection,
    tenant: str,
    rows: Sequence[tuple[str, int, Sequence[float]]],
    model_id: str = MODEL_ID,
) -> None:
    """Upsert (entity_id, version, vector) rows of one tenant in one statement; a row never
    goes back to an older version (a slow refresh racing a newer one loses)."""
    if not rows:
        return
    conn.execute(
        text(
            "INSERT INTO skill_embeddings (tenant_id, entity_id, version, model_id, embedding) "
            "SELECT :t, u.e, u.v, :m, CAST(u.x AS vector) FROM unnest("
            "CAST(:e AS uuid[]), CAST(:v AS integer[]), CAST(:x AS text[])) AS u(e, v, x) "
            "ON CONFLICT (tenant_id, entity_id, model_id) DO UPDATE "
            "SET version = EXCLUDED.version, embedding = EXCLUDED.embedding, created_at = now() "
            "WHERE skill_embeddings.version < EXCLUDED.version"
        ),
        {
            "t": tenant,
            "m": model_id,
            "e": [r[0] for r in rows],
            "v": [r[1] for r in rows],
            "x": [vector_literal(r[2]) for r in rows],
        },
    )


@dataclass(frozen=True)
class Neighbour:
    entity_id: str
    similarity: float  # cosine, in [-1, 1]; unit vectors


_NEAREST = (
    "SELECT entity_id, embedding <=> CAST(:q AS vector) AS distance "
    "FROM skill_embeddings WHERE tenant_id = :t AND model_id = :m "
    "ORDER BY embedding <=> CAST(:q AS vector) LIMIT :n"
)


def _search_breadth(conn: Connection, limit: int) -> None:
    conn.execute(text(f"SET LOCAL hnsw.ef_search = {int(max(EF_SEARCH, limit))}"))


def nearest(
    conn: Connection,
    tenant: str,
    vector: Sequence[float],
    limit: int,
    model_id: str = MODEL_ID,
) -> list[Neighbour]:
    """The tenant's skills nearest ``vector`` by cosine, best first, through the HNSW index
    (``ORDER BY embedding <=> q LIMIT``), whatever their heads say."""
    _search_breadth(conn, limit)
    rows = conn.execute(
        text(f"SELECT CAST(entity_id AS text), 1 - distance FROM ({_NEAREST}) AS near"),
        {"q": vector_literal(vector), "t": tenant, "m": model_id, "n": limit},
    ).all()
    return [Neighbour(r[0], float(r[1])) for r in rows]


#: Candidates the index yields per result asked for: the live-head, status and category
#: filters apply after the index's nearest-first scan, so a page asks it for 4x its size.
OVERFETCH = 4


@dataclass(frozen=True)
class Ranked:
    head: heads.Head
    body: bytes
    leaf_hash: bytes
    digest: bytes
    similarity: float


def ranked_sql(status: str | None, category: str | None, exclude: str | None) -> str:
    """The statement of :func:`ranked` (for it and for the test that reads its plan): the
    index's ``:n`` nearest vectors of the tenant, joined to their live heads (deprecated
    skills only when ``status`` asks for them) and the filters, best first."""
    clauses = ["h.kind = 'skill'"]
    clauses.append("h.status = :status" if status is not None else "h.status <> 'deprecated'")
    if category is not None:
        clauses.append("h.category = :category")
    if exclude is not None:
        clauses.append("h.entity_id <> CAST(:exclude AS uuid)")
    return (
        "SELECT CAST(h.entity_id AS text), h.kind, h.version, h.status, h.name, "
        "h.first_index, h.log_index, e.body, e.leaf_hash, e.digest, 1 - near.distance "
        f"FROM ({_NEAREST}) AS near "
        "JOIN entity_heads h ON h.tenant_id = :t AND h.entity_id = near.entity_id "
        "JOIN log_entries e ON e.tenant_id = h.tenant_id AND e.idx = h.log_index "
        f"WHERE {' AND '.join(clauses)} ORDER BY near.distance LIMIT :limit"
    )


def ranked(
    conn: Connection,
    tenant: str,
    vector: Sequence[float],
    limit: int,
    *,
    status: str | None = None,
    category: str | None = None,
    exclude: str | None = None,
) -> list[Ranked]:
    """Up to ``limit`` live skills nearest ``vector``, best first, with their current
    versions and cosine similarity; fewer when the filters reject most candidates."""
    n = limit * OVERFETCH
    _search_breadth(conn, n)
    params = {"q": vector_literal(vector), "t": tenant, "m": MODEL_ID, "n": n, "limit": limit}
    params.update({"status": status, "category": category, "exclude": exclude})
    rows = conn.execute(
        text(ranked_sql(status, category, exclude)),
        {k: v for k, v in params.items() if v is not None},
    ).all()
    return [
        Ranked(heads.Head(*r[:7]), bytes(r[7]), bytes(r[8]), bytes(r[9]), float(r[10]))
        for r in rows
    ]


def vector_of(conn: Connection, tenant: str, entity_id: str, version: int) -> list[float] | None:
    """The stored vector of one skill's ``version``, or None (missing or stale)."""
    value = conn.execute(
        text(
            "SELECT CAST(embedding AS text) FROM skill_embeddings WHERE tenant_id = :t "
            "AND entity_id = CAST(:e AS uuid) AND model_id = :m AND version = :v"
        ),
        {"t": tenant, "e": entity_id, "m": MODEL_ID, "v": version},
    ).scalar()
    return None if value is None else [float(x) for x in value.strip("[]").split(",")]


def stale(conn: Connection, tenant: str, limit: int) -> list[tuple[str, int, bytes]]:
    """Up to ``limit`` live skills whose vector is missing or older than their head, oldest
    first: (entity_id, head version, current body)."""
    rows = conn.execute(
        text(
            "SELECT CAST(h.entity_id AS text), h.version, e.body FROM entity_heads h "
            "JOIN log_entries e ON e.tenant_id = h.tenant_id AND e.idx = h.log_index "
            "LEFT JOIN skill_embeddings s ON s.tenant_id = h.tenant_id "
            "AND s.entity_id = h.entity_id AND s.model_id = :m "
            "WHERE h.tenant_id = :t AND h.kind = 'skill' AND h.status <> 'deprecated' "
            "AND (s.version IS NULL OR s.version < h.version) "
            "ORDER BY h.first_index LIMIT :n"
        ),
        {"t": tenant, "m": MODEL_ID, "n": limit},
    ).all()
    return [(r[0], int(r[1]), bytes(r[2])) for r in rows]
