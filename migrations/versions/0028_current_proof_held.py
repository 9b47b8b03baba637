"""``plant_current_proof`` reads less for a caller that holds the checkpoint's fixed parts.

Every current-version proof against one checkpoint of size S shares most of what it reads:
the signed note, the ``map_commit`` entry at S - 1 and its inclusion path, the perfect
subtrees of the tree's right edge, and the narrow upper levels of the log that every path
crosses. At 1,000,000 entities that was ~45 of a proof's ~50 log node probes, and the map's
33 prefix probes found 3 strata. These are immutable once signed (append-only tables,
enforced by trigger), so the served route keeps them per process until the next seal
(``registry.current``), as proofs for clients already keep log nodes (``tree.CachedNodes``).

The caller says which checkpoint it holds (``p_held``, a size) and how wide a level it holds
whole (``p_width``): the levels ``l`` from ``cp_top`` up, the first where ``S >> l`` is below
the width. When the latest checkpoint (read in the same statement, so never an older one)
is the held one (``cp_held`` true), it returns of the log only the nodes of the version's
and certificate's paths below ``cp_top``; the note and the commit entry it still reads (one
probe), and the caller compares them with those it holds, so a commit entry rewritten since
is refused as before rather than masked by what was held; otherwise it
returns everything as before plus every node of the levels from ``cp_top`` up, for the caller
to hold (about 2,000 nodes at 1,000,000 leaves with a width of 1,024: once per seal).
``p_held`` NULL (a bundle's proofs, against a given checkpoint) returns what 0025's did.

The map's strata on the key's path are the rows under ``key[:0]``, ``key[:1]``, ... up to the
first missing one (a stored node's ancestors are stored, so no stratum below a missing one is
on the path; one planted there would be read by no proof): one probe a stratum plus one,
~4 at 1,000,000 keys, where 0025 probed all 33 prefixes. The probes are a loop of single
statements, each comparing the key column with a variable (no Var under a non-leakproof
function, so PostgreSQL 15 keeps it an index condition under row-level security); the
function is STABLE, so every statement in it reads the calling statement's snapshot: the
checkpoint, the strata and the nodes are still one snapshot. A full stratum still returns
only the 8 records on the key's path, now sliced from the row read once into a variable
(detoasted once: eight slices of the stored value were eight TOAST probes).

Its statements are planned once per session (``plan_cache_mode``): with the held and filling
branches behind parameters, a plan made for each call's values looked so much cheaper than
a generic one that PostgreSQL kept planning the query anew on every call (~3 ms of the
server's time a proof under load, more than the rest of the function); the generic plan
gates the branches not taken by one-time filters on those parameters.

Revision ID: 0028
Revises: 0026
"""

from alembic import op

from shared.storage.migrate import migration_module

revision = "0028"
down_revision = "0026"
branch_labels = None
depends_on = None

CURRENT_PROOF = """
CREATE FUNCTION plant_current_proof(p_tenant text, p_entity uuid, p_size bigint,
                                    p_held bigint, p_width bigint)
RETURNS TABLE (cp_size bigint, cp_held boolean, cp_top integer, cp_note text,
               commit_type text, commit_body bytea, version_idx bigint, version_kind text,
               version_number integer, version_leaf bytea, version_body bytea,
               certificate_idx bigint, certificate_body bytea, map_path bytea, log_path bytea)
LANGUAGE plpgsql STABLE SECURITY INVOKER SET search_path = public SET jit = off
  SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  v_key bytea := sha256(uuid_send(p_entity));
  v_size bigint;
  v_note text;
  v_held boolean;
  v_top integer := 64;
  v_prefix bytea;
  v_nodes bytea;
  v_map bytea := ''::bytea;
  v_byte integer;
  v_cut bytea;
BEGIN
  PERFORM set_config('plant.tenant', p_tenant, true);
  SELECT c.size, c.note INTO v_size, v_note FROM checkpoints c
   WHERE c.tenant_id = p_tenant AND (p_size IS NULL OR c.size = p_size)
   ORDER BY c.size DESC LIMIT 1;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  v_held := coalesce(v_size = p_held, false);
  IF p_held IS NOT NULL AND p_width > 0 THEN
    SELECT min(g) INTO v_top FROM generate_series(0, 63) AS g WHERE (v_size >> g) < p_width;
  END IF;
  FOR g IN 0..32 LOOP
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
  RETURN QUERY
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
  )
  SELECT cp.size, v_held, v_top, v_note,
         c.entry_type, c.body, ver.idx, ver.kind, ver.version, ver.leaf_hash, ver.body,
         cert.idx, cert.body, v_map,
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
REVOKE ALL ON FUNCTION plant_current_proof(text, uuid, bigint, bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION plant_current_proof(text, uuid, bigint, bigint, bigint) TO plant_app;
"""


def upgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute("DROP FUNCTION plant_current_proof(text, uuid, bigint)")
    op.execute(CURRENT_PROOF)
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute("DROP FUNCTION plant_current_proof(text, uuid, bigint, bigint, bigint)")
    op.execute(migration_module("0025_map_strata").CURRENT_PROOF)
    op.execute(
        "REVOKE ALL ON FUNCTION plant_current_proof FROM PUBLIC; "
        "GRANT EXECUTE ON FUNCTION plant_current_proof TO plant_app"
    )
    op.execute("RESET ROLE")
