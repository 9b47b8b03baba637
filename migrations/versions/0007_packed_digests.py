"""Packed section and field digests, and bulk creates staged through COPY.

Each version kept its section and field digests as JSON: about 2.5 KB of hex per row, parsed
into jsonb by the server and, with the body, past the 2 KB at which PostgreSQL compresses a
row (TOAST). They are locators for an audit, not the integrity proof, so new rows keep them
packed in ``field_hashes`` (16-byte digests behind a layout id, about 0.5 KB; the format is
in ``shared/integrity/digests.py``); older rows keep their JSON, and exactly one of the two
is set. The write functions take the packed bytes.

A bulk create sent its items as one JSON document (the bodies hex-encoded inside it), which
the server parsed three times over, after the client had encoded them all. Now the client
copies the items a chunk at a time into a temporary table (binary COPY: the bytes as they
are) and ``plant_batch_append`` appends each chunk while the client encodes the next, with
the same checks and one move of the log counter (``plant_batch_open``), all in the client's
transaction.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

from shared.storage.migrate import migration_module

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UPGRADE = """
SET LOCAL ROLE plant_owner;

ALTER TABLE log_entries ADD COLUMN field_hashes bytea;
ALTER TABLE log_entries ALTER COLUMN field_digests DROP NOT NULL;
ALTER TABLE log_entries ADD CONSTRAINT log_entries_digests_kept
  CHECK (num_nonnulls(field_digests, field_hashes) = 1);

DROP FUNCTION plant_append_versions(jsonb);
DROP FUNCTION plant_append_version(text, text, uuid, integer, bytea, bytea, bytea, bytea, jsonb,
  text, text, text, text, text, boolean, timestamptz, bigint, uuid[], bigint[]);
DROP FUNCTION plant_create_versions(text, text, jsonb, text, timestamptz, uuid[], bigint[]);

-- As in 0004, with the packed digests.
CREATE FUNCTION plant_append_version(
  p_tenant text, p_kind text, p_entity uuid, p_version integer,
  p_body bytea, p_digest bytea, p_leaf bytea, p_prev bytea, p_field_hashes bytea,
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

  IF p_version > 1 THEN
    SELECT version, log_index INTO v_current
      FROM entity_heads WHERE entity_id = p_entity FOR UPDATE;
    IF NOT FOUND OR v_current.version <> p_version - 1
       OR v_current.log_index <> p_expect_index THEN
      RAISE EXCEPTION 'the entity changed meanwhile' USING ERRCODE = '40001';
    END IF;
  END IF;

  PERFORM plant_check_pins(p_refs, p_ref_indices);

  IF p_check_unique AND p_unique_key IS NOT NULL THEN
    SELECT entity_id INTO v_holder FROM entity_heads
     WHERE kind = p_kind AND unique_key = p_unique_key AND status <> 'deprecated'
       AND entity_id <> p_entity
     LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION '%', v_holder USING ERRCODE = 'PL409';
    END IF;
  END IF;

  INSERT INTO log_heads AS h (tenant_id, size) VALUES (p_tenant, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET size = h.size + 1
    RETURNING h.size - 1 INTO v_idx;
  INSERT INTO log_entries (tenant_id, idx, entry_type, kind, entity_id, version, body, digest,
                           leaf_hash, prev_digest, field_hashes, actor)
    VALUES (p_tenant, v_idx, 'version', p_kind, p_entity, p_version, p_body, p_digest,
            p_leaf, p_prev, p_field_hashes, p_actor);

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

-- As in 0005; item 8 is now the packed digests, hex.
CREATE FUNCTION plant_append_versions(p_items jsonb)
RETURNS TABLE (item bigint, log_index bigint)
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public AS $$
DECLARE
  v_item jsonb;
  v_tenant text;
  v_refs uuid[];
  v_ref_indices bigint[];
BEGIN
  FOR v_item, item IN
    SELECT b.e, b.ord FROM jsonb_array_elements(p_items) WITH ORDINALITY AS b(e, ord)
     ORDER BY b.e->>0, b.ord
  LOOP
    IF v_tenant IS DISTINCT FROM v_item->>0 THEN
      v_tenant := v_item->>0;
      PERFORM set_config('plant.tenant', v_tenant, true);
      PERFORM 1 FROM entity_heads h
       WHERE h.entity_id IN (
         SELECT CAST(e->>2 AS uuid) FROM jsonb_array_elements(p_items) AS e
          WHERE e->>0 = v_tenant AND CAST(e->>3 AS integer) > 1
         UNION
         SELECT CAST(p.key AS uuid)
           FROM jsonb_array_elements(p_items) AS e, jsonb_each_text(e->17) AS p
          WHERE e->>0 = v_tenant)
       ORDER BY h.entity_id FOR UPDATE;
    END IF;
    SELECT coalesce(array_agg(CAST(p.key AS uuid) ORDER BY p.key), '{}'),
           coalesce(array_agg(CAST(p.value AS bigint) ORDER BY p.key), '{}')
      INTO v_refs, v_ref_indices
      FROM jsonb_each_text(v_item->17) AS p;
    BEGIN
      log_index := plant_append_version(
        v_item->>0, v_item->>1, CAST(v_item->>2 AS uuid), CAST(v_item->>3 AS integer),
        decode(v_item->>4, 'hex'), decode(v_item->>5, 'hex'), decode(v_item->>6, 'hex'),
        decode(v_item->>7, 'hex'), decode(v_item->>8, 'hex'), v_item->>9, v_item->>10,
        v_item->>11, v_item->>12, v_item->>13, CAST(v_item->>14 AS boolean),
        CAST(v_item->>15 AS timestamptz), CAST(v_item->>16 AS bigint), v_refs, v_ref_indices);
    EXCEPTION WHEN SQLSTATE '40001' OR SQLSTATE 'PL409' THEN
      log_index := NULL;
    END;
    RETURN NEXT;
  END LOOP;
END $$;

REVOKE ALL ON FUNCTION plant_append_versions FROM PUBLIC;
GRANT EXECUTE ON FUNCTION plant_append_versions TO plant_app;

-- A bulk create, in the caller's transaction, in three steps so that the server appends one
-- chunk while the client encodes the next:
--   plant_batch_open: the pinned references, and the counter moved for the whole batch once
--     (its row lock held to the commit); returns the first index;
--   plant_batch_append, per chunk copied into pg_temp.plant_staged (items numbered from 0 in
--     ord, item ord at first + ord): the entries and heads of staged items with
--     ord >= p_from, a key a live entity holds refused with the holder's id (PL409);
--   plant_batch_close: every index of the batch holds an entry (the primary key refuses a
--     repeated one), so the log has no gap.
CREATE FUNCTION plant_batch_open(p_tenant text, p_count bigint, p_refs uuid[],
                                 p_ref_indices bigint[]) RETURNS bigint
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public AS $$
DECLARE
  v_first bigint;
BEGIN
  PERFORM set_config('plant.tenant', p_tenant, true);
  IF p_count < 1 THEN
    RAISE EXCEPTION 'a batch holds at least one item' USING ERRCODE = '22023';
  END IF;
  PERFORM plant_check_pins(p_refs, p_ref_indices);
  INSERT INTO log_heads AS h (tenant_id, size) VALUES (p_tenant, p_count)
    ON CONFLICT (tenant_id) DO UPDATE SET size = h.size + p_count
    RETURNING h.size - p_count INTO v_first;
  RETURN v_first;
END $$;

CREATE FUNCTION plant_batch_append(p_tenant text, p_kind text, p_actor text,
                                   p_at timestamptz, p_first bigint, p_from integer)
RETURNS void
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public AS $$
DECLARE
  v_key text;
  v_holder uuid;
BEGIN
  PERFORM set_config('plant.tenant', p_tenant, true);
  INSERT INTO log_entries (tenant_id, idx, entry_type, kind, entity_id, version, body, digest,
                           leaf_hash, prev_digest, field_hashes, actor)
    SELECT p_tenant, p_first + s.ord, 'version', p_kind, s.entity_id, 1, s.body, s.digest,
           s.leaf_hash, NULL, s.field_hashes, p_actor
      FROM pg_temp.plant_staged s WHERE s.ord >= p_from;
  -- Uniqueness among live entities is the partial unique index's to refuse (it also waits
  -- for a writer of the same key that has not committed yet); when it does, the holder is
  -- found key by key, each a probe of that index.
  BEGIN
    INSERT INTO entity_heads (tenant_id, entity_id, kind, version, status, name, category,
                              unique_key, first_index, log_index, created_at, updated_at)
      SELECT p_tenant, s.entity_id, p_kind, 1, 'draft', s.name, s.category, s.unique_key,
             p_first + s.ord, p_first + s.ord, p_at, p_at
        FROM pg_temp.plant_staged s WHERE s.ord >= p_from;
  EXCEPTION WHEN unique_violation THEN
    FOR v_key IN SELECT s.unique_key FROM pg_temp.plant_staged s
                  WHERE s.ord >= p_from AND s.unique_key IS NOT NULL LOOP
      SELECT h.entity_id INTO v_holder FROM entity_heads h
       WHERE h.kind = p_kind AND h.unique_key = v_key AND h.status <> 'deprecated';
      IF FOUND THEN
        RAISE EXCEPTION '%', v_holder USING ERRCODE = 'PL409';
      END IF;
    END LOOP;
    RAISE;
  END;
END $$;

CREATE FUNCTION plant_batch_close(p_tenant text, p_first bigint, p_count bigint)
RETURNS void
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public AS $$
BEGIN
  PERFORM set_config('plant.tenant', p_tenant, true);
  IF (SELECT count(*) FROM log_entries
       WHERE idx >= p_first AND idx < p_first + p_count) <> p_count THEN
    RAISE EXCEPTION 'the batch left a gap in the log' USING ERRCODE = '22023';
  END IF;
END $$;

REVOKE ALL ON FUNCTION plant_batch_open, plant_batch_append, plant_batch_close FROM PUBLIC;
GRANT EXECUTE ON FUNCTION plant_batch_open, plant_batch_append, plant_batch_close TO plant_app;
"""

DOWNGRADE = """
SET LOCAL ROLE plant_owner;
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM log_entries WHERE field_hashes IS NOT NULL) THEN
    RAISE EXCEPTION 'rows with packed digests exist: the ledger is append-only, so they '
                    'cannot be rewritten into the older form';
  END IF;
END $$;
DROP FUNCTION plant_batch_open, plant_batch_append, plant_batch_close;
DROP FUNCTION plant_append_versions;
DROP FUNCTION plant_append_version;
ALTER TABLE log_entries DROP CONSTRAINT log_entries_digests_kept;
ALTER TABLE log_entries ALTER COLUMN field_digests SET NOT NULL;
ALTER TABLE log_entries DROP COLUMN field_hashes;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute(DOWNGRADE)
    # The functions as 0004 and 0005 defined them (0004's definitions of the two write
    # functions sit between these markers in its text).
    old = migration_module("0004_one_trip_writes").FUNCTION
    start = old.index("CREATE FUNCTION plant_append_version(")
    end = old.index("-- Stored subtree hashes by packed key")
    op.execute(old[start:end])
    op.execute(migration_module("0005_group_appends").FUNCTION)
    op.execute("RESET ROLE")
