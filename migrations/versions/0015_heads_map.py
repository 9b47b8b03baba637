"""The map of heads (issue 24): stored map nodes, and ``map_commit`` entries in the log.

``heads_map_nodes`` holds each tenant's sparse Merkle tree of entity heads
(``shared/integrity/sparse_merkle.py``): a node at (depth, prefix), ``prefix`` being the
first ceil(depth / 8) bytes of its keys with the unused low bits of the last byte zeroed,
and ``node`` its 65-byte hash preimage. It is derived state, recomputable from the log (the
audit does), so the application may overwrite a node when a seal rewrites it; what it
commits to is in the log, in each ``map_commit`` entry's root. ``plant_map_prefix`` is the
prefix rule, used by the one statement that reads the paths of many keys. (Migration
0025 stores the map in strata instead; its downgrade restores ``NODES``.) A seal appends
``map_commit`` entries (entity id nil, version 1, kind ``map``); a partial index finds the
last one without scanning the log.

Revision ID: 0015
Revises: 0014
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

NODES = """
CREATE TABLE heads_map_nodes (
  tenant_id text     NOT NULL,
  depth     smallint NOT NULL CHECK (depth >= 0 AND depth <= 256),
  prefix    bytea    NOT NULL CHECK (length(prefix) = (depth + 7) / 8),
  node      bytea    NOT NULL CHECK (length(node) = 65),
  PRIMARY KEY (tenant_id, depth, prefix)
);
ALTER TABLE heads_map_nodes ENABLE ROW LEVEL SECURITY;
ALTER TABLE heads_map_nodes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON heads_map_nodes
  USING (tenant_id = current_setting('plant.tenant', true))
  WITH CHECK (tenant_id = current_setting('plant.tenant', true));
REVOKE ALL ON heads_map_nodes FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON heads_map_nodes TO plant_app;

-- The first `d` bits of key `k`, as the prefix column stores them.
CREATE FUNCTION plant_map_prefix(k bytea, d integer) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT CASE WHEN d % 8 = 0 THEN substring(k FROM 1 FOR d / 8)
    ELSE set_byte(substring(k FROM 1 FOR (d + 7) / 8), (d + 7) / 8 - 1,
                  get_byte(k, (d + 7) / 8 - 1) & ((65280 >> (d % 8)) & 255)) END
$$;
"""

UPGRADE = f"""
SET LOCAL ROLE plant_owner;
{NODES}
ALTER TABLE log_entries DROP CONSTRAINT log_entries_entry_type_check;
ALTER TABLE log_entries ADD CONSTRAINT log_entries_entry_type_check
  CHECK (entry_type IN ('version', 'certificate', 'audit', 'map_commit'));
CREATE INDEX log_entries_map_commits ON log_entries (tenant_id, idx)
  WHERE entry_type = 'map_commit';
"""

DOWNGRADE = """
SET LOCAL ROLE plant_owner;
DROP INDEX IF EXISTS log_entries_map_commits;
DROP FUNCTION IF EXISTS plant_map_prefix(bytea, integer);
DROP TABLE IF EXISTS heads_map_nodes;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute(DOWNGRADE)
    op.execute("RESET ROLE")
