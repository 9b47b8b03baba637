"""``plant_current_proof``: every stored part of a current-version proof in one statement.

A proof (issue 24) needs the latest checkpoint, the ``map_commit`` entry at its last index,
the stored map nodes on the entity's key path, the entity's newest version and certificate
entries below the commit, and the log nodes of three inclusion paths. Read one statement at
a time that was eight round trips a proof; this function returns them as one row from one
query (one snapshot, even on an autocommit connection). Nothing is computed that the proof
trusts: the caller hashes, folds and checks as before, so a node or entry rewritten in the
database still yields a proof that fails verification.

It runs as the caller (SECURITY INVOKER) under the tenant it sets, as the one-trip writes do:
row-level security filters every table it reads, and another tenant's rows are invisible to
it. Each probe is a LATERAL subquery with LIMIT 1 comparing plain columns with plain values
of the outer row: under that policy PostgreSQL 15 cannot use the index for a probe comparing
a column with an expression over the outer row (``depth = w.depth + 1``, a non-leakproof
``+``) and reads the tenant's whole table instead (27 s a key at 1,000,000 entities, as
``map_nodes`` did), so the walk carries each
step's child address (``next_depth``, ``next_prefix``) as columns, and the checkpoint its
last index (``last``: ``idx = size - 1`` planned the commit's read as a sequential scan).
JIT is off for it (a mis-estimate would compile for longer than the query runs).

The log nodes returned are a superset of the three paths': for each leaf index ``m`` the
sibling at every level wholly inside the tree, ``(l, (m >> l) xor 1)`` with that index below
``size >> l``, and the perfect subtrees of the tree's right edge, ``(l, (size >> l) - 1)`` for
each bit ``l`` of ``size`` (the incomplete right-hand ranges of any path fold from those).
``p_size`` NULL means the latest checkpoint; a number means that checkpoint (a bundle's).

Revision ID: 0018
Revises: 0017
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

UPGRADE = """
SET LOCAL ROLE plant_owner;

CREATE FUNCTION plant_current_proof(p_tenant text, p_entity uuid, p_size bigint)
RETURNS TABLE (cp_size bigint, cp_note text, commit_type text, commit_body bytea,
               version_idx bigint, version_kind text, version_number integer,
               version_leaf bytea, version_body bytea, certificate_idx bigint,
               certificate_body bytea, map_path bytea, log_path bytea)
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public SET jit = off AS $$
DECLARE
  v_key bytea := sha256(uuid_send(p_entity));
  v_zero bytea := decode(repeat('00', 32), 'hex');
BEGIN
  PERFORM set_config('plant.tenant', p_tenant, true);
  RETURN QUERY
  WITH RECURSIVE cp AS MATERIALIZED (
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
  ), walk(depth, prefix, node, next_depth, next_prefix) AS (
    SELECT CAST(0 AS smallint), m.prefix, m.node, CAST(1 AS smallint), plant_map_prefix(v_key, 1)
      FROM heads_map_nodes m
     WHERE m.tenant_id = p_tenant AND m.depth = 0 AND m.prefix = ''::bytea
    UNION ALL
    SELECT w.next_depth, m.prefix, m.node, CAST(w.next_depth + 1 AS smallint),
           plant_map_prefix(v_key, least(w.next_depth + 1, 256))
      FROM walk w CROSS JOIN LATERAL (
      SELECT n.prefix, n.node FROM heads_map_nodes n
       WHERE n.tenant_id = p_tenant AND n.depth = w.next_depth AND n.prefix = w.next_prefix
       LIMIT 1) AS m
     WHERE w.depth < 256 AND get_byte(w.node, 0) = 3
       AND substring(w.node FROM 2 + 32 * ((get_byte(v_key, w.depth / 8) >> (7 - w.depth % 8)) & 1)
                     FOR 32) <> v_zero
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
         (SELECT coalesce(string_agg(int2send(CAST(w.depth AS smallint))
                   || overlay(v_zero PLACING w.prefix FROM 1) || w.node, ''::bytea), ''::bytea)
            FROM walk w),
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
REVOKE ALL ON FUNCTION plant_current_proof FROM PUBLIC;
GRANT EXECUTE ON FUNCTION plant_current_proof TO plant_app;
"""

DOWNGRADE = """
SET LOCAL ROLE plant_owner;
DROP FUNCTION IF EXISTS plant_current_proof(text, uuid, bigint);
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute(DOWNGRADE)
    op.execute("RESET ROLE")
