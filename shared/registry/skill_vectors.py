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


def nearest(
    conn: Connection,
    tenant: str,
    vector: Sequence[float],
    limit: int,
    model_id: str = MODEL_ID,
) -> list[Neighbour]:
    """The tenant's skills nearest ``vector`` by cosine, best first, through the HNSW index
    (``ORDER BY embedding <=> q LIMIT``). Joining the live heads and their filters is the
    caller's: over-fetch, then filter, as the index returns candidates before RLS does."""
    conn.execute(text(f"SET LOCAL hnsw.ef_search = {int(max(EF_SEARCH, limit))}"))
    rows = conn.execute(
        text(
            "SELECT CAST(entity_id AS text), 1 - (embedding <=> CAST(:q AS vector)) "
            "FROM skill_embeddings WHERE tenant_id = :t AND model_id = :m "
            "ORDER BY embedding <=> CAST(:q AS vector) LIMIT :n"
        ),
        {"q": vector_literal(vector), "t": tenant, "m": model_id, "n": limit},
    ).all()
    return [Neighbour(r[0], float(r[1])) for r in rows]
