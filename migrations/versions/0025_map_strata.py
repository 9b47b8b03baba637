"""The map of heads stored in strata of 8 levels, a row per 256-wide subtree (issue 24).

Stored a node per row (``heads_map_nodes``, 0015), a seal of 10,000 changed heads into a map
of 1,000,000 read and upserted ~101,000 rows: most of its 6.6 s. ``heads_map_strata`` holds a
row per stratum (``shared/storage/map_strata.py``): the nodes at depths 8s to 8s + 7 under
one prefix of ``s`` key bytes, each as one byte of position and its 65 stored bytes, so the
same seal reads and writes ~10,000 rows. The map's hashes, root and proofs are unchanged:
only where its nodes are kept. The rows are the nodes as present (no hash is stored that a
row holds no preimage of, none recomputed to read one); ``nodes`` is kept uncompressed
(hashes do not compress) and inline up to a page (a 1,000,000-key map's third level of strata
is ~2.5 KB a row; only full strata, the top two levels, go out of line).

The existing nodes move into strata in one statement (row-level security lifted for the
owner on the two tables inside this migration's transaction), ``heads_map_nodes`` and the
prefix function that walked it are dropped, and ``plant_current_proof`` reads the strata
of the key's path by their prefixes: the strata on a path are the rows whose prefixes are
``key[:0]``, ``key[:1]``, ... that exist, so the recursive walk goes. Each prefix (an element
of a variable of the function) is a LATERAL probe with LIMIT 1 comparing the primary key's
column with a plain column: under row-level security PostgreSQL 15 makes no index condition
of a comparison with a non-leakproof expression over an outer row, and ``prefix =
ANY(array)`` was planned as a scan of the tenant's strata once the table held several
tenants. Of a full stratum (255 nodes, 16.5 KB: the top two
levels of a large map) it returns the 8 records on the key's path only, sliced from the
uncompressed value by offset (position p is record p - 1), so a proof at 1,000,000 keys reads
~5 KB of strata, not ~36 KB; any other stratum whole.

Revision ID: 0025
Revises: 0024
"""

from alembic import op

from shared.storage.migrate import migration_module

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

STRATA = """
CREATE TABLE heads_map_strata (
  tenant_id text  NOT NULL,
  prefix    bytea NOT NULL CHECK (length(prefix) <= 32),
  nodes     bytea NOT NULL CHECK (length(nodes) % 66 = 0 AND length(nodes) BETWEEN 66 AND 16830),
  PRIMARY KEY (tenant_id, prefix)
) WITH (toast_tuple_target = 8160);
ALTER TABLE heads_map_strata ALTER COLUMN nodes SET STORAGE EXTERNAL;
ALTER TABLE heads_map_strata ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON heads_map_strata
  USING (tenant_id = current_setting('plant.tenant', true))
  WITH CHECK (tenant_id = current_setting('plant.tenant', true));
REVOKE ALL ON heads_map_strata FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON heads_map_strata TO plant_app;
"""

# Each node to its stratum: the first depth / 8 bytes of its prefix, at position
# 2^(depth % 8) + the depth % 8 bits of its index below them.
MOVE_UP = """
ALTER TABLE heads_map_nodes NO FORCE ROW LEVEL SECURITY;
INSERT INTO heads_map_strata (tenant_id, prefix, nodes)
SELECT tenant_id, substring(prefix FROM 1 FOR depth / 8),
       string_agg(set_byte('\\x00'::bytea, 0, pos) || node, ''::bytea ORDER BY pos)
  FROM (SELECT tenant_id, depth, prefix, node,
               CASE WHEN depth % 8 = 0 THEN 1
                    ELSE (1 << (depth % 8)) | (get_byte(prefix, depth / 8) >> (8 - depth % 8))
               END AS pos
          FROM heads_map_nodes) AS n
 GROUP BY tenant_id, substring(prefix FROM 1 FOR depth / 8);
DROP TABLE heads_map_nodes;
DROP FUNCTION plant_map_prefix(bytea, integer);
"""

MOVE_DOWN = """
ALTER TABLE heads_map_nodes NO FORCE ROW LEVEL SECURITY;
INSERT INTO heads_map_nodes (tenant_id, depth, prefix, node)
SELECT s.tenant_id, 8 * length(s.prefix) + r.k,
       CASE WHEN r.k = 0 THEN s.prefix
            ELSE s.prefix || set_byte('\\x00'::bytea, 0, (r.pos - (1 << r.k)) << (8 - r.k)) END,
       substring(s.nodes FROM 66 * r.j + 2 FOR 65)
  FROM heads_map_strata s CROSS JOIN LATERAL (
    SELECT j, get_byte(s.nodes, 66 * j) AS pos,
           CASE WHEN get_byte(s.nodes, 66 * j) >= 128 THEN 7
                WHEN get_byte(s.nodes, 66 * j) >= 64 THEN 6
                WHEN get_byte(s.nodes, 66 * j) >= 32 THEN 5
                WHEN get_byte(s.nodes, 66 * j) >= 16 THEN 4
                WHEN get_byte(s.nodes, 66 * j) >= 8 THEN 3
                WHEN get_byte(s.nodes, 66 * j) >= 4 THEN 2
                WHEN get_byte(s.nodes, 66 * j) >= 2 THEN 1 ELSE 0 END AS k
      FROM generate_series(0, length(s.nodes) / 66 - 1) AS j) AS r;
ALTER TABLE heads_map_nodes FORCE ROW LEVEL SECURITY;
DROP TABLE heads_map_strata;
"""

CURRENT_PROOF = """
CREATE OR REPLACE FUNCTION plant_current_proof(p_tenant text, p_entity uuid, p_size bigint)
RETURNS TABLE (cp_size bigint, cp_note text, commit_type text, commit_body bytea,
               version_idx bigint, version_kind text, version_number integer,
               version_leaf bytea, version_body bytea, certificate_idx bigint,
               certificate_body bytea, map_path bytea, log_path bytea)
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public SET jit = off AS $$
DECLARE
  v_key bytea := sha256(uuid_send(p_entity));
  v_prefixes bytea[] := ARRAY(SELECT substring(v_key FROM 1 FOR g)
                                FROM generate_series(0, 32) AS g);
BEGIN
  PERFORM set_config('plant.tenant', p_tenant, true);
  RETURN QUERY
  WITH cp AS MATERIALIZED (
    SELECT c.size, c.size - 1 AS last, c.note FROM checkpoints c
     WHERE c.tenant_id = p_tenant AND (p_size IS NULL OR c.size = p_size)
     ORDER BY c.size DESC LIMIT 1
  ), ver AS (
    SELECT e.idx, e.kind, e.version, e.leaf_hash, e.body FROM cp CROSS JOIN LATERAL (
      SELECT l.idx, l.kind, l.version, l.leaf_hash, l.body FROM log_entries l
       WHERE l.tenant_id = p_tenant AND l.entity_id = p_entity AND l.entry_type = 'version'
         AND l.idx < cp.last ORDER BY l.idx DESC LIMIT 1) AS e
  ), cert AS (
    SELECT e.idx, e.body FROM cp CROSS JOIN LATERAL (
      SELECT l.idx, l.body FROM log_entries l
       WHERE l.tenant_id = p_tenant AND l.entity_id = p_entity
         AND l.entry_type = 'certificate' AND l.idx < cp.last
       ORDER BY l.idx DESC LIMIT 1) AS e
  ), leaves(m) AS (
    SELECT cp.last FROM cp UNION SELECT ver.idx FROM ver UNION SELECT cert.idx FROM cert
  ), wanted(lv, ix) AS (
    SELECT g.l, (leaves.m >> g.l) # 1 FROM leaves, cp, generate_series(0, 62) AS g(l)
     WHERE ((leaves.m >> g.l) # 1) < (cp.size >> g.l)
    UNION
    SELECT g.l, (cp.size >> g.l) - 1 FROM cp, generate_series(0, 62) AS g(l)
     WHERE ((cp.size >> g.l) & 1) = 1
  )
  SELECT cp.size, cp.note, c.entry_type, c.body, ver.idx, ver.kind, ver.version,
         ver.leaf_hash, ver.body, cert.idx, cert.body,
         (SELECT coalesce(string_agg(int2send(CAST(length(s.prefix) AS smallint))
                   || int4send(length(r.nodes)) || r.nodes, ''::bytea), ''::bytea)
            FROM unnest(v_prefixes) AS a(prefix) CROSS JOIN LATERAL (
              SELECT m.prefix, m.nodes FROM heads_map_strata m
               WHERE m.tenant_id = p_tenant AND m.prefix = a.prefix LIMIT 1) AS s
            CROSS JOIN LATERAL (
              SELECT CASE WHEN length(s.nodes) < 16830 THEN s.nodes ELSE (
                SELECT string_agg(substring(s.nodes FROM 66 * (((1 << g.k)
                         | (get_byte(v_key, length(s.prefix)) >> (8 - g.k))) - 1) + 1 FOR 66),
                       ''::bytea ORDER BY g.k)
                  FROM generate_series(0, 7) AS g(k)) END AS nodes) AS r),
         (SELECT coalesce(string_agg(int8send((CAST(wanted.lv AS bigint) << 56) | wanted.ix)
                   || int4send(length(h.hash)) || h.hash, ''::bytea), ''::bytea)
            FROM wanted CROSS JOIN LATERAL (
              SELECT n.hash FROM log_nodes n WHERE n.tenant_id = p_tenant
                 AND n.level = wanted.lv AND n.idx = wanted.ix LIMIT 1) AS h)
    FROM cp LEFT JOIN LATERAL (
      SELECT e.entry_type, e.body FROM log_entries e
       WHERE e.tenant_id = p_tenant AND e.idx = cp.last LIMIT 1) AS c ON true
    LEFT JOIN ver ON true LEFT JOIN cert ON true;
END $$;
"""


def upgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute(STRATA)
    op.execute(MOVE_UP)
    op.execute("ALTER TABLE heads_map_strata FORCE ROW LEVEL SECURITY")
    # statistics for the strata moved, if any: an empty table's (no rows, no pages) would
    # have the planner scan it for every probe until autovacuum analyzes it again
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT FROM heads_map_strata) THEN ANALYZE heads_map_strata; "
        "END IF; END $$"
    )
    op.execute(CURRENT_PROOF)
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute(migration_module("0015_heads_map").NODES)
    op.execute("ALTER TABLE heads_map_strata NO FORCE ROW LEVEL SECURITY")
    op.execute(MOVE_DOWN)
    op.execute("DROP FUNCTION plant_current_proof(text, uuid, bigint)")
    op.execute(migration_module("0018_current_proof_reads").UPGRADE)
    op.execute("RESET ROLE")
