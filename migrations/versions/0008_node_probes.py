"""``plant_nodes`` probes each key by index again under row-level security.

0006 compared ``level`` and ``idx`` with ``k >> 56`` and ``k & mask`` inside the probe.
Those operators are not leakproof, so for the application role (whose reads pass the
tenant-isolation policy first) PostgreSQL may not use them as index conditions: each probe
read every node of the tenant (about 0.6 s a key at 2,000,000 nodes; an incremental audit of a
million-entry log took 30 s instead of under one). The level and index are now split from the
key in the outer query, and the probe compares plain columns, which is leakproof: one index
probe per key, as the superuser always had.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

from shared.storage.migrate import migration_module

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

PROBES = """
CREATE OR REPLACE FUNCTION plant_nodes(p_keys bigint[])
RETURNS TABLE (node_key bigint, hash bytea)
LANGUAGE plpgsql STABLE SECURITY INVOKER SET search_path = public AS $$
DECLARE
  v_tenant text := current_setting('plant.tenant');
BEGIN
  RETURN QUERY
    SELECT found.k, found.h FROM (
      SELECT key.k, (SELECT l.hash FROM log_nodes l
                      WHERE l.tenant_id = v_tenant AND l.level = key.lv
                        AND l.idx = key.ix) AS h
        FROM (SELECT k, CAST(k >> 56 AS smallint) AS lv, k & 72057594037927935 AS ix
                FROM unnest(p_keys) AS k OFFSET 0) AS key
      OFFSET 0) AS found
    WHERE found.h IS NOT NULL;
END $$;
"""


def upgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute(PROBES)
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute(migration_module("0006_node_reads").PROBES)  # 0006's definition again
    op.execute("RESET ROLE")
