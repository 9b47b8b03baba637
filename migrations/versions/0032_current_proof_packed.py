"""``plant_current_proof`` answers in one packed value and skips the map's held top strata.

Served at 1,000,000 entities, a proof cost ~0.35 ms of the caller's CPU in the driver's parse
of the function's 15 result columns (a row description of 15 fields, each value converted on
its own) and ~0.6 ms of the server's, of which the map's two top strata (full, 16.8 KB each,
stored out of line) were read and detoasted for every proof although every proof against
one checkpoint reads the same two. So:

- **One value.** The function returns a single ``bytea``: the checkpoint's size (int8), the
  held flag and the held levels' floor (int2 each), then 13 parts, each its length (int4, -1
  for none) and its bytes: the note and the commit's type (UTF-8), the commit's body, the
  version's index (int8), kind (UTF-8), number (int4), leaf hash and body, the certificate's
  index (int8) and body, the map's strata on the key's path (as 0028's ``map_path``), the log
  nodes (as 0028's ``log_path``) and the strata held (below). ``storage.proof_reads`` splits
  it and refuses any value that is not exactly these parts.
- **The map's top strata are held with the checkpoint.** A caller that holds a checkpoint's
  fixed parts also says how many levels of strata it holds whole (``p_strata``; at most 2,
  the root stratum and the 256 below it, 4.3 MB at 1,000,000 keys). When the latest
  checkpoint is not the held one, the function returns those levels' strata whole (one
  statement, the prefixes as an array variable so that the probe stays an index condition
  under row-level security on 15) for the caller to hold with that checkpoint; when it is the
  held one, the key's path is read from level ``p_from`` (the caller's: the first level it
  does not hold, or 33 when the strata it holds already end the path), so ~2 probes of small
  strata instead of 2 full strata detoasted and ~2 probes more. The strata table holds the
  latest checkpoint's map and the latest checkpoint is read in the same snapshot, so held
  strata are only ever used against the checkpoint they were read with.
- **One statement fewer.** The held levels' floor is computed in PL/pgSQL, not by a query
  over ``generate_series``.

What is read, and under which tenant, is otherwise 0028's: the note and the commit entry are
still read and compared by the caller, the function runs as its caller under the tenant it
sets, and ``p_held`` NULL (a bundle's proofs) returns what 0028 did, packed.

Revision ID: 0032
Revises: 0031
"""

from alembic import op

from shared.storage.migrate import migration_module

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None

CURRENT_PROOF = """
CREATE FUNCTION plant_current_proof(p_tenant text, p_entity uuid, p_size bigint,
                                    p_held bigint, p_width bigint, p_strata integer,
                                    p_from integer)
RETURNS bytea
LANGUAGE plpgsql STABLE SECURITY INVOKER SET search_path = public SET jit = off
  SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  v_key bytea := sha256(uuid_send(p_entity));
  v_size bigint;
  v_note text;
  v_held boolean;
  v_top integer := 64;
  v_prefix bytea;
  v_prefixes bytea[];
  v_nodes bytea;
  v_map bytea := ''::bytea;
  v_whole bytea;
  v_byte integer;
  v_cut bytea;
  v_from integer := 0;
  v_reply bytea;
BEGIN
  PERFORM set_config('plant.tenant', p_tenant, true);
  SELECT c.size, c.note INTO v_size, v_note FROM checkpoints c
   WHERE c.tenant_id = p_tenant AND (p_size IS NULL OR c.size = p_size)
   ORDER BY c.size DESC LIMIT 1;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  v_held := coalesce(v_size = p_held, false);
  IF p_held IS NOT NULL AND p_width > 0 THEN
    v_top := 0;
    WHILE (v_size >> v_top) >= p_width LOOP
      v_top := v_top + 1;
    END LOOP;
  END IF;
  IF p_held IS NOT NULL AND NOT v_held AND p_strata > 0 THEN
    v_prefixes := ARRAY(
      SELECT substring(int8send(i) FROM 9 - g) FROM generate_series(0, least(p_strata, 2) - 1) g,
             generate_series(0, (1 << (8 * g)) - 1) i);
    SELECT string_agg(int2send(CAST(length(m.prefix) AS smallint)) || m.prefix
                      || int4send(length(m.nodes)) || m.nodes, ''::bytea ORDER BY m.prefix)
      INTO v_whole FROM heads_map_strata m
     WHERE m.tenant_id = p_tenant AND m.prefix = ANY(v_prefixes);
  END IF;
  IF v_held THEN
    v_from := coalesce(p_from, 0);
  END IF;
  FOR g IN v_from..32 LOOP
    v_prefix := substring(v_key FROM 1 FOR g);
    SELECT m.nodes INTO v_nodes FROM heads_map_strata m
     WHERE m.tenant_id = p_tenant AND m.prefix = v_prefix;
    EXIT WHEN NOT FOUND;
    IF length(v_nodes) >= 16830 AND g < 32 THEN
      v_byte := get_byte(v_key, g);
      v_cut := ''::bytea;
      FOR k IN 0..7 LOOP
        v_cut := v_cut
          || substring(v_nodes FROM 66 * (((1 << k) | (v_byte >> (8 - k))) - 1) + 1 FOR 66);
      END LOOP;
      v_nodes := v_cut;
    END IF;
    v_map := v_map || int2send(CAST(g AS smallint)) || int4send(length(v_nodes)) || v_nodes;
  END LOOP;
  WITH cp AS MATERIALIZED (
    SELECT v_size AS size, v_size - 1 AS last
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
    SELECT cp.last FROM cp WHERE NOT v_held
    UNION SELECT ver.idx FROM ver UNION SELECT cert.idx FROM cert
  ), wanted(lv, ix) AS (
    SELECT g.l, (leaves.m >> g.l) # 1 FROM leaves, cp, generate_series(0, 62) AS g(l)
     WHERE ((leaves.m >> g.l) # 1) < (cp.size >> g.l) AND (g.l < v_top OR NOT v_held)
    UNION
    SELECT g.l, (cp.size >> g.l) - 1 FROM cp, generate_series(0, 62) AS g(l)
     WHERE ((cp.size >> g.l) & 1) = 1 AND NOT v_held
    UNION
    SELECT g.l, i.i FROM cp, generate_series(v_top, 62) AS g(l),
           generate_series(0, (cp.size >> g.l) - 1) AS i(i)
     WHERE p_held IS NOT NULL AND NOT v_held
  ), got AS (
    SELECT c.entry_type, c.body AS commit_body, ver.idx AS v_idx, ver.kind, ver.version,
           ver.leaf_hash, ver.body AS v_body, cert.idx AS c_idx, cert.body AS c_body,
           (SELECT coalesce(string_agg(int8send((CAST(wanted.lv AS bigint) << 56) | wanted.ix)
                     || int4send(length(h.hash)) || h.hash, ''::bytea), ''::bytea)
              FROM wanted CROSS JOIN LATERAL (
                SELECT n.hash FROM log_nodes n WHERE n.tenant_id = p_tenant
                   AND n.level = wanted.lv AND n.idx = wanted.ix LIMIT 1) AS h) AS log_path
      FROM cp LEFT JOIN LATERAL (
        SELECT e.entry_type, e.body FROM log_entries e
         WHERE e.tenant_id = p_tenant AND e.idx = cp.last LIMIT 1) AS c ON true
      LEFT JOIN ver ON true LEFT JOIN cert ON true
  )
  SELECT int8send(v_size) || int2send(CAST(CASE WHEN v_held THEN 1 ELSE 0 END AS smallint))
         || int2send(CAST(v_top AS smallint))
         || (SELECT string_agg(coalesce(int4send(length(p.v)) || p.v, '\\xffffffff'::bytea),
                               ''::bytea ORDER BY p.n)
               FROM (VALUES (1, convert_to(v_note, 'UTF8')),
                            (2, convert_to(got.entry_type, 'UTF8')),
                            (3, got.commit_body), (4, int8send(got.v_idx)),
                            (5, convert_to(got.kind, 'UTF8')), (6, int4send(got.version)),
                            (7, got.leaf_hash), (8, got.v_body), (9, int8send(got.c_idx)),
                            (10, got.c_body), (11, v_map), (12, got.log_path),
                            (13, coalesce(v_whole, ''::bytea))) AS p(n, v))
    INTO v_reply FROM got;
  RETURN v_reply;
END $$;
REVOKE ALL ON FUNCTION plant_current_proof(text, uuid, bigint, bigint, bigint, integer, integer)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION plant_current_proof(text, uuid, bigint, bigint, bigint, integer, integer)
  TO plant_app;
"""


def upgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute("DROP FUNCTION plant_current_proof(text, uuid, bigint, bigint, bigint)")
    op.execute(CURRENT_PROOF)
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute(
        "DROP FUNCTION plant_current_proof(text, uuid, bigint, bigint, bigint, integer, integer)"
    )
    op.execute(migration_module("0028_current_proof_held").CURRENT_PROOF)
    op.execute("RESET ROLE")
