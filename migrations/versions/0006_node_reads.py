"""``plant_nodes`` looks each key up through a subquery per key.

The loop of 0004 ran one PL/pgSQL statement per key (about 8 us each on the bench VM); a
scalar subquery per element of the key array is one index probe each inside a single query
(about 4 us), and it cannot be turned into a hash join over the tenant's whole tree, whatever
the estimates say: PostgreSQL never pulls a scalar subquery of the select list up into a join.
``OFFSET 0`` keeps the outer filter from evaluating the subquery a second time.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
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
      SELECT k, (SELECT l.hash FROM log_nodes l
                  WHERE l.tenant_id = v_tenant AND l.level = (k >> 56)
                    AND l.idx = (k & 72057594037927935)) AS h
        FROM unnest(p_keys) AS k
      OFFSET 0) AS found
    WHERE found.h IS NOT NULL;
END $$;
"""

LOOP = """
CREATE OR REPLACE FUNCTION plant_nodes(p_keys bigint[])
RETURNS TABLE (node_key bigint, hash bytea)
LANGUAGE plpgsql STABLE SECURITY INVOKER SET search_path = public AS $$
DECLARE
  v_tenant text := current_setting('plant.tenant');
BEGIN
  FOREACH node_key IN ARRAY p_keys LOOP
    SELECT l.hash INTO hash FROM log_nodes l
     WHERE l.tenant_id = v_tenant AND l.level = (node_key >> 56)
       AND l.idx = (node_key & 72057594037927935);
    IF FOUND THEN
      RETURN NEXT;
    END IF;
  END LOOP;
END $$;
"""


def upgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute(PROBES)
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute(LOOP)
    op.execute("RESET ROLE")
