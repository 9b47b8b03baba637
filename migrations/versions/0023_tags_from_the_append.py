"""A version's tags are written by ``plant_append_version`` from the body it appends (issue 27).

Since 0011 a head's tags (``entity_tags``) were written by two triggers on ``entity_heads``:
one per statement on insert, which captured the new heads in a transition table, joined them
back to ``log_entries`` for their logged bodies and parsed each (``plant_body_tags``); one per
row when a head's ``log_index`` moved, which did the same for that head. For a single create
that was about a third of the append function's time on the server (the transition table,
the trigger's own statement and its join), for a body the function already holds in hand.

Now ``plant_append_version`` writes them itself, from ``p_body``, the very bytes it appends:
on a new head, the body's tags at the head's first index; on a moved head, the old rows
deleted and the new body's written, under the head's own kind and first index (as the
moved-head trigger did; the caller's ``p_kind`` is not the head's to change). The tags are
still derived by the database from the logged body (``plant_body_tags``, unchanged: none when
the body is not JSON or has no ``metadata.tags`` list, a repeated tag once), never taken from
the caller: a caller with the application role that calls the function directly gets
exactly the tags its body holds (``tests/registry/test_tags_from_the_append.py``).
``plant_append_versions`` and the cascade's statement call this function, so groups and
cascades write their tags the same way.

Both triggers and their functions go. A bulk create already writes its heads' tags itself
(0021), from each item's tags beside its body; the ``plant.batch_tagged`` setting with which
it kept the insert trigger off its heads is no longer read. Heads written by anything else
(the superuser's seeding in tests and benchmarks, an insider's direct INSERT) get no tags:
tags are search data, which the audit neither reads nor trusts.

Revision ID: 0023
Revises: 0021
"""

from alembic import op

from shared.storage.migrate import migration_module

revision = "0023"
down_revision = "0021"
branch_labels = None
depends_on = None

UPGRADE = """
SET LOCAL ROLE plant_owner;

DROP TRIGGER entity_heads_tags_inserted ON entity_heads;
DROP TRIGGER entity_heads_tags_moved ON entity_heads;
DROP FUNCTION plant_tags_inserted();
DROP FUNCTION plant_tags_moved();

-- As in 0010, then the head's tags from p_body: a new head's added; a moved head's replaced,
-- under the kind and first index the head keeps.
CREATE OR REPLACE FUNCTION plant_append_version(
  p_tenant text, p_kind text, p_entity uuid, p_version integer,
  p_body bytea, p_digest bytea, p_leaf bytea, p_prev bytea, p_field_hashes bytea,
  p_actor text, p_status text, p_name text, p_category text, p_unique_key text,
  p_check_unique boolean, p_at timestamptz, p_expect_index bigint,
  p_refs uuid[], p_ref_indices bigint[]
) RETURNS bigint
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public AS $$
DECLARE
  v_current record;
  v_check boolean := p_check_unique AND p_unique_key IS NOT NULL;
  v_holder uuid;
  v_holder_name text;
  v_idx bigint;
  v_kind text := p_kind;
  v_first bigint;
BEGIN
  PERFORM set_config('plant.tenant', p_tenant, true);

  IF p_version > 1 THEN
    SELECT version, log_index, status, unique_key INTO v_current
      FROM entity_heads WHERE entity_id = p_entity FOR UPDATE;
    IF NOT FOUND OR v_current.version <> p_version - 1
       OR v_current.log_index <> p_expect_index THEN
      RAISE EXCEPTION 'the entity changed meanwhile' USING ERRCODE = '40001';
    END IF;
    v_check := v_check AND (v_current.status = 'deprecated'
                            OR v_current.unique_key IS DISTINCT FROM p_unique_key);
  END IF;

  PERFORM plant_check_pins(p_refs, p_ref_indices);

  INSERT INTO log_heads AS h (tenant_id, size) VALUES (p_tenant, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET size = h.size + 1
    RETURNING h.size - 1 INTO v_idx;

  IF v_check THEN
    SELECT entity_id, name INTO v_holder, v_holder_name FROM entity_heads
     WHERE kind = p_kind AND status <> 'deprecated' AND entity_id <> p_entity
       AND (unique_reading_1 = plant_key_reading(p_unique_key, 1)
            OR unique_reading_2 = plant_key_reading(p_unique_key, 2))
     LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION '%', v_holder USING ERRCODE = 'PL409', DETAIL = v_holder_name;
    END IF;
  END IF;

  INSERT INTO log_entries (tenant_id, idx, entry_type, kind, entity_id, version, body, digest,
                           leaf_hash, prev_digest, field_hashes, actor)
    VALUES (p_tenant, v_idx, 'version', p_kind, p_entity, p_version, p_body, p_digest,
            p_leaf, p_prev, p_field_hashes, p_actor);

  IF p_version = 1 THEN
    INSERT INTO entity_heads (tenant_id, entity_id, kind, version, status, name, category,
                              unique_key, first_index, log_index, created_at, updated_at)
      VALUES (p_tenant, p_entity, p_kind, 1, p_status, p_name, p_category, p_unique_key,
              v_idx, v_idx, p_at, p_at);
    v_first := v_idx;
  ELSE
    UPDATE entity_heads SET version = p_version, status = p_status, name = p_name,
           category = p_category, unique_key = p_unique_key, log_index = v_idx,
           updated_at = p_at
     WHERE entity_id = p_entity
    RETURNING kind, first_index INTO v_kind, v_first;
    DELETE FROM entity_tags WHERE tenant_id = p_tenant AND entity_id = p_entity;
  END IF;
  INSERT INTO entity_tags (tenant_id, entity_id, kind, tag, first_index)
    SELECT p_tenant, p_entity, v_kind, t.tag, v_first FROM plant_body_tags(p_body) AS t(tag);
  RETURN v_idx;
END $$;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    # plant_append_version as 0010 defined it.
    old = migration_module("0010_name_readings").UPGRADE
    start = old.index("CREATE OR REPLACE FUNCTION plant_append_version(")
    op.execute(old[start : old.index("-- As in 0007, with the staged keys'", start)])
    # The triggers of 0011, plant_tags_inserted as 0021 left it.
    search = migration_module("0011_search").UPGRADE
    batch = migration_module("0021_batch_keys_first").UPGRADE
    inserted = batch[batch.index("CREATE OR REPLACE FUNCTION plant_tags_inserted(") :]
    op.execute(inserted.replace("CREATE OR REPLACE FUNCTION", "CREATE FUNCTION", 1))
    op.execute(
        search[search.index("CREATE FUNCTION plant_tags_moved(") : search.index("-- Backfill")]
    )
    op.execute("RESET ROLE")
