"""One-statement writes and reads: ``plant_append_version``, ``plant_create_versions`` and
``plant_nodes``.

A registry write used to hold the tenant's log counter (the ``log_heads`` row lock) across
several client round trips: append, move the head, COMMIT. Cloud SQL is never on the same
host, so every round trip held the lock for a network delay and capped each tenant's log at
a few hundred appends per second. This function does the whole write (re-check what the
caller read, the uniqueness rule, the append, the head) in one statement, which the caller
runs as its own transaction: the counter lock is held only while the server works.

It runs as the caller (SECURITY INVOKER): the app role's grants, the append-only triggers
and row-level security apply exactly as for the statements it replaces.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

FUNCTION = """
SET LOCAL ROLE plant_owner;

-- The references a writer checked (id, log index of the version it read) are share-locked
-- and must still be current; otherwise SQLSTATE 40001 and the caller re-runs its operation.
CREATE FUNCTION plant_check_pins(p_refs uuid[], p_ref_indices bigint[]) RETURNS void
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public AS $$
DECLARE
  v_matched integer;
BEGIN
  IF cardinality(p_refs) > 0 THEN
    SELECT count(*) INTO v_matched FROM (
      SELECT 1 FROM entity_heads h
        JOIN unnest(p_refs, p_ref_indices) AS r(id, log_index)
          ON h.entity_id = r.id AND h.log_index = r.log_index
       ORDER BY h.entity_id FOR SHARE OF h) AS locked;
    IF v_matched <> cardinality(p_refs) THEN
      RAISE EXCEPTION 'a referenced entity changed meanwhile' USING ERRCODE = '40001';
    END IF;
  END IF;
END $$;

REVOKE ALL ON FUNCTION plant_check_pins FROM PUBLIC;
GRANT EXECUTE ON FUNCTION plant_check_pins TO plant_app;

CREATE FUNCTION plant_append_version(
  p_tenant text, p_kind text, p_entity uuid, p_version integer,
  p_body bytea, p_digest bytea, p_leaf bytea, p_prev bytea, p_field_digests jsonb,
  p_actor text, p_status text, p_name text, p_category text, p_unique_key text,
  p_check_unique boolean, p_at timestamptz, p_expect_index bigint,
  p_refs uuid[], p_ref_indices bigint[]
) RETURNS bigint
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public AS $$
DECLARE
  v_current record;
  v_holder uuid;
  v_idx bigint;
BEGIN
  PERFORM set_config('plant.tenant', p_tenant, true);

  -- 1. The entity's own head must still be the one the caller read (40001: re-run).
  IF p_version > 1 THEN
    SELECT version, log_index INTO v_current
      FROM entity_heads WHERE entity_id = p_entity FOR UPDATE;
    IF NOT FOUND OR v_current.version <> p_version - 1
       OR v_current.log_index <> p_expect_index THEN
      RAISE EXCEPTION 'the entity changed meanwhile' USING ERRCODE = '40001';
    END IF;
  END IF;

  -- 2. Every referenced entity is share-locked and still at the version the caller checked.
  PERFORM plant_check_pins(p_refs, p_ref_indices);

  -- 3. Uniqueness among live entities (the partial unique index backs this up).
  IF p_check_unique AND p_unique_key IS NOT NULL THEN
    SELECT entity_id INTO v_holder FROM entity_heads
     WHERE kind = p_kind AND unique_key = p_unique_key AND status <> 'deprecated'
       AND entity_id <> p_entity
     LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION '%', v_holder USING ERRCODE = 'PL409';
    END IF;
  END IF;

  -- 4. Append: the counter's row lock is taken last and released at this statement's commit.
  INSERT INTO log_heads AS h (tenant_id, size) VALUES (p_tenant, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET size = h.size + 1
    RETURNING h.size - 1 INTO v_idx;
  INSERT INTO log_entries (tenant_id, idx, entry_type, kind, entity_id, version, body, digest,
                           leaf_hash, prev_digest, field_digests, actor)
    VALUES (p_tenant, v_idx, 'version', p_kind, p_entity, p_version, p_body, p_digest,
            p_leaf, p_prev, p_field_digests, p_actor);

  -- 5. Move the head.
  IF p_version = 1 THEN
    INSERT INTO entity_heads (tenant_id, entity_id, kind, version, status, name, category,
                              unique_key, first_index, log_index, created_at, updated_at)
      VALUES (p_tenant, p_entity, p_kind, 1, p_status, p_name, p_category, p_unique_key,
              v_idx, v_idx, p_at, p_at);
  ELSE
    UPDATE entity_heads SET version = p_version, status = p_status, name = p_name,
           category = p_category, unique_key = p_unique_key, log_index = v_idx,
           updated_at = p_at
     WHERE entity_id = p_entity;
  END IF;
  RETURN v_idx;
END $$;

REVOKE ALL ON FUNCTION plant_append_version FROM PUBLIC;
GRANT EXECUTE ON FUNCTION plant_append_version TO plant_app;

-- A batch of new entities (version 1 each) in one statement: the same checks as above,
-- set-based, and one move of the counter for the whole batch. ``p_items`` is a JSON array,
-- one array per entity: [id, body hex, digest hex, leaf hash hex, field digests, name,
-- category, unique key] (one JSON text is far cheaper for the driver than eight arrays).
-- Returns the first index; item i (0-based) is at first + i.
CREATE FUNCTION plant_create_versions(
  p_tenant text, p_kind text, p_items jsonb, p_actor text, p_at timestamptz,
  p_refs uuid[], p_ref_indices bigint[]
) RETURNS bigint
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public AS $$
DECLARE
  v_count integer := jsonb_array_length(p_items);
  v_holder uuid;
  v_first bigint;
BEGIN
  PERFORM set_config('plant.tenant', p_tenant, true);

  PERFORM plant_check_pins(p_refs, p_ref_indices);

  SELECT h.entity_id INTO v_holder FROM entity_heads h
   WHERE h.kind = p_kind AND h.status <> 'deprecated'
     AND h.unique_key IN (SELECT e->>7 FROM jsonb_array_elements(p_items) AS e)
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION '%', v_holder USING ERRCODE = 'PL409';
  END IF;

  INSERT INTO log_heads AS h (tenant_id, size) VALUES (p_tenant, v_count)
    ON CONFLICT (tenant_id) DO UPDATE SET size = h.size + v_count
    RETURNING h.size - v_count INTO v_first;
  INSERT INTO log_entries (tenant_id, idx, entry_type, kind, entity_id, version, body, digest,
                           leaf_hash, prev_digest, field_digests, actor)
    SELECT p_tenant, v_first + b.ord - 1, 'version', p_kind, CAST(b.e->>0 AS uuid), 1,
           decode(b.e->>1, 'hex'), decode(b.e->>2, 'hex'), decode(b.e->>3, 'hex'), NULL,
           b.e->4, p_actor
      FROM jsonb_array_elements(p_items) WITH ORDINALITY AS b(e, ord);
  INSERT INTO entity_heads (tenant_id, entity_id, kind, version, status, name, category,
                            unique_key, first_index, log_index, created_at, updated_at)
    SELECT p_tenant, CAST(b.e->>0 AS uuid), p_kind, 1, 'draft', b.e->>5, b.e->>6, b.e->>7,
           v_first + b.ord - 1, v_first + b.ord - 1, p_at, p_at
      FROM jsonb_array_elements(p_items) WITH ORDINALITY AS b(e, ord);
  RETURN v_first;
END $$;

REVOKE ALL ON FUNCTION plant_create_versions FROM PUBLIC;
GRANT EXECUTE ON FUNCTION plant_create_versions TO plant_app;

-- Stored subtree hashes by packed key (level << 56 | index): one primary-key probe each,
-- a plan PL/pgSQL prepares once per session (a set-based join would be planned per call,
-- or cached generically as a hash join over the whole table).
CREATE FUNCTION plant_nodes(p_keys bigint[])
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

-- Exports and audits list every kind in creation order: without this index each keyset
-- batch of an unfiltered export sorted all of the tenant's remaining heads.
CREATE INDEX entity_heads_by_first_index ON entity_heads (tenant_id, first_index);

REVOKE ALL ON FUNCTION plant_nodes FROM PUBLIC;
GRANT EXECUTE ON FUNCTION plant_nodes TO plant_app;
"""


def upgrade() -> None:
    op.execute(FUNCTION)
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS entity_heads_by_first_index")
    op.execute("DROP FUNCTION IF EXISTS plant_nodes")
    op.execute("DROP FUNCTION IF EXISTS plant_create_versions")
    op.execute("DROP FUNCTION IF EXISTS plant_append_version")
    op.execute("DROP FUNCTION IF EXISTS plant_check_pins")
