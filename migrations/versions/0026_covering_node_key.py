"""``log_nodes``' primary key carries the hash: a node read is one index probe, no heap page.

A proof's nodes are read by key, about 2,000 random probes for 200 proofs at 1,000,000
leaves. Each probe descended the primary key and then fetched the row's heap page for its
hash: at 1,000,000 leaves the table (190 MB) and its key (170 MB) outgrow a default 128 MB
buffer pool, and the heap pages, one per node at random, were the pages most often read
back (issue 27, decision 5). The key now includes the hash (``INCLUDE (hash)``, still unique
on ``(tenant_id, level, idx)``), so a read is an index-only scan wherever the visibility map
says the page is all-visible, as an append-only table's pages soon are (autovacuum after
inserts); a page not yet marked is read from the heap as before, so no read depends on it.
Measured: the server's CPU for the same proofs halved, and the rebuilt key (181 MB) is
barely larger than the old one, whose inserts in the seal's order had left it half full.

The key is built before the old one goes, then swapped in under the old name, in one
transaction: writes to ``log_nodes`` (seals) wait while it builds (about ten seconds at
2,000,000 nodes on this machine).

``plant_node_hashes`` returns the hashes of the keys asked for in the order asked, as one
value, with how many were found and their shortest and longest length: when every key was
found at 32 bytes, hash i is bytes [32i, 32i + 32) and the caller decodes no key (32 bytes
a node instead of ``plant_nodes``' 44, which the caller still reads when one is missing or
of another length). A function, so that its plan is cached per session: the same statement
sent as text was planned on every call, a fifth more server time for a single proof's read.
Each probe compares plain columns split from the key beforehand (``OFFSET 0``), as 0008
requires under row-level security, and ``LIMIT 1`` keeps it a nested loop of probes (as a
plain join the planner may hash the tenant's whole tree).

Revision ID: 0026
Revises: 0025
"""

from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


HASHES = """
CREATE FUNCTION plant_node_hashes(p_keys bigint[])
RETURNS TABLE (node_count bigint, shortest integer, longest integer, hashes bytea)
LANGUAGE plpgsql STABLE SECURITY INVOKER SET search_path = public AS $$
DECLARE
  v_tenant text := current_setting('plant.tenant');
BEGIN
  RETURN QUERY
    SELECT count(*), min(length(n.hash)), max(length(n.hash)),
           coalesce(string_agg(n.hash, ''::bytea ORDER BY k.o), ''::bytea)
      FROM (SELECT CAST(u.k >> 56 AS smallint) AS lv, u.k & 72057594037927935 AS ix, u.o
              FROM unnest(p_keys) WITH ORDINALITY AS u(k, o) OFFSET 0) AS k
      CROSS JOIN LATERAL (SELECT l.hash FROM log_nodes l
                           WHERE l.tenant_id = v_tenant AND l.level = k.lv AND l.idx = k.ix
                           LIMIT 1) AS n;
END $$;
REVOKE ALL ON FUNCTION plant_node_hashes FROM PUBLIC;
GRANT EXECUTE ON FUNCTION plant_node_hashes TO plant_app;
"""


def _swap(include: str) -> str:
    return f"""
CREATE UNIQUE INDEX log_nodes_key_next ON log_nodes (tenant_id, level, idx) {include};
ALTER TABLE log_nodes DROP CONSTRAINT log_nodes_pkey,
  ADD CONSTRAINT log_nodes_pkey PRIMARY KEY USING INDEX log_nodes_key_next;
"""


def upgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute(_swap("INCLUDE (hash)"))
    op.execute(HASHES)
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute("DROP FUNCTION IF EXISTS plant_node_hashes")
    op.execute(_swap(""))
    op.execute("RESET ROLE")
