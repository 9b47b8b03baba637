"""Merkle log: stored perfect-subtree hashes and signed checkpoints.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = """
SET LOCAL ROLE plant_owner;

-- Node (level, idx) is the RFC 9162 hash of leaves [idx * 2^level, (idx + 1) * 2^level):
-- only perfect subtrees are stored, so any root or proof needs O(log n) of them.
CREATE TABLE log_nodes (
  tenant_id text     NOT NULL,
  level     smallint NOT NULL CHECK (level >= 0 AND level < 64),
  idx       bigint   NOT NULL CHECK (idx >= 0),
  hash      bytea    NOT NULL CHECK (length(hash) = 32),
  PRIMARY KEY (tenant_id, level, idx)
);

-- Every signed checkpoint (C2SP tlog-checkpoint signed note), never rewritten.
CREATE TABLE checkpoints (
  tenant_id  text        NOT NULL,
  size       bigint      NOT NULL CHECK (size >= 0),
  root       bytea       NOT NULL CHECK (length(root) = 32),
  note       text        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, size)
);

CREATE INDEX log_entries_by_leaf ON log_entries (tenant_id, leaf_hash);

REVOKE ALL ON log_nodes, checkpoints FROM PUBLIC;
GRANT SELECT, INSERT ON log_nodes, checkpoints TO plant_app;
"""


def append_only(table: str) -> str:
    return f"""
CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
  FOR EACH ROW EXECUTE FUNCTION plant_refuse_change();
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
  FOR EACH STATEMENT EXECUTE FUNCTION plant_refuse_change();
ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON {table}
  USING (tenant_id = current_setting('plant.tenant', true))
  WITH CHECK (tenant_id = current_setting('plant.tenant', true));
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    op.execute(append_only("log_nodes"))
    op.execute(append_only("checkpoints"))
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS checkpoints, log_nodes")
    op.execute("DROP INDEX IF EXISTS log_entries_by_leaf")
