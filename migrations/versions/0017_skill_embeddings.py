"""Skill embeddings (issue 28): a table of derived vectors, only where pgvector is available.

``skill_embeddings`` holds, per tenant, one vector per (skill, model): the 384-dimension
unit vector of ``shared/registry/embeddings.skill_text`` for the skill's ``version``, by the
model ``model_id`` names (name and file digest). It is derived data like ``entity_tags``:
never part of a hashed byte or of the log, never read by the audit, rebuildable at any
time from the heads; a vector whose ``version`` is below its head's is stale, and a search
may still use it (the refresh that recomputes it is not part of the write path).

The HNSW index (``vector_cosine_ops``: ``embedding <=> q`` is 1 - cosine) serves the
nearest-first order. It spans all tenants; row-level security filters its candidates, so a
query raises ``hnsw.ef_search`` (pgvector 0.6 has no iterative scan: a tenant holding a small
share of the table gets fewer than ``limit`` rows from a plain index scan at the default 40).

pgvector is not everywhere: Cloud SQL and the embedded PostgreSQL 16 (``pgserver``) ship it,
a Debian PostgreSQL 15 without ``postgresql-15-pgvector`` does not. Where
``pg_available_extensions`` has no ``vector``, this revision creates nothing, logs a warning
and still succeeds; the table's absence is the record, read at run time by
``shared/registry/skill_vectors.unavailable`` (the feature then answers 501 naming the
extension). Once pgvector is installed there, ``create(connection)`` below (idempotent)
makes the table; re-running this revision is not needed.

``CREATE EXTENSION`` runs as the migrating user (a superuser locally, ``cloudsqlsuperuser``
on Cloud SQL: pgvector is not a trusted extension), before ``SET ROLE plant_owner``, which
owns the table as it owns every other.

Revision ID: 0017
Revises: 0016
"""

import logging

from alembic import op
from sqlalchemy import text
from sqlalchemy.engine import Connection

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

TABLE = """
SET LOCAL ROLE plant_owner;
CREATE TABLE IF NOT EXISTS skill_embeddings (
  tenant_id  text        NOT NULL,
  entity_id  uuid        NOT NULL,
  version    integer     NOT NULL CHECK (version >= 1),
  model_id   text        NOT NULL,
  embedding  vector(384) NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, entity_id, model_id)
);
CREATE INDEX IF NOT EXISTS skill_embeddings_nearest
  ON skill_embeddings USING hnsw (embedding vector_cosine_ops);
REVOKE ALL ON skill_embeddings FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON skill_embeddings TO plant_app;
ALTER TABLE skill_embeddings ENABLE ROW LEVEL SECURITY;
ALTER TABLE skill_embeddings FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON skill_embeddings;
CREATE POLICY tenant_isolation ON skill_embeddings
  USING (tenant_id = current_setting('plant.tenant', true))
  WITH CHECK (tenant_id = current_setting('plant.tenant', true));
RESET ROLE;
"""


def vector_available(conn: Connection) -> bool:
    """Whether this server can run ``CREATE EXTENSION vector`` (installed or installable)."""
    return bool(
        conn.execute(
            text("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')")
        ).scalar_one()
    )


def create(conn: Connection) -> bool:
    """The extension, the table, its index, grants and policy, if pgvector is available.
    Idempotent. Returns whether the table exists afterwards."""
    if not vector_available(conn):
        log.warning(
            "PostgreSQL extension 'vector' (pgvector) is not available on this server: "
            "skill_embeddings not created; similar-skill search will answer 501"
        )
        return False
    conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
    conn.execute(text(TABLE))
    return True


def upgrade() -> None:
    create(op.get_bind())


def downgrade() -> None:
    # The extension stays: other databases' or objects' use of it is not this revision's.
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute("DROP TABLE IF EXISTS skill_embeddings")
    op.execute("RESET ROLE")
