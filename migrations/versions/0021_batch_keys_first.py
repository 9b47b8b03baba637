"""Bulk creates check every key once, before any of the batch's heads exist (issue 27).

``plant_batch_append`` checked each chunk's key readings against the live heads after the
earlier chunks had added theirs. In a tenant the planner's statistics do not know yet (a
new one, or one grown since its last ANALYZE) it estimates one live head and joins the
chunk's readings to every head of the kind, row by row: quadratic, 13 of a 10,000-item
batch's 15 seconds.

Now the client first copies every item's identity (``ord``, its new id, name, category and
unique key: all known once the input checks pass, before any document is encoded) into
``pg_temp.plant_items``. The first append (``p_from`` = 0) checks all of them in one
statement, while the tenant's heads hold none of the batch: each item's readings probe the
live-readings indexes, and two items of the batch reading alike are found by a join of the
items to themselves (the caller refuses those first, with a 422; the server no longer takes
its word for it). It returns every item refused, each with the holder (a live head, or the
earlier item of the batch), and then writes nothing, so the caller can name them all in one
409. Otherwise each append writes the entries and the heads of the chunk just copied into
``pg_temp.plant_staged`` (the encoded bytes: ord, body, digest, leaf hash, field hashes),
joined to its items by ``ord``. ``plant_batch_open`` and ``plant_batch_close`` (no gap in
the log) are unchanged.

A batch also writes its heads' tags itself, from each item's ``tags`` (the list the body
holds as ``metadata.tags``, as the head's name and key come from the client beside the
body), before it adds the heads: ``plant_tags_inserted`` parsed every new head's logged body
in a PL/pgSQL call with its own subtransaction, as long as the batch's entries and heads
took to write, and now leaves out a new head that already has tags. A single create's head
has none yet, so its tags are still read from its logged body.

The batch still holds the tenant's log counter from ``plant_batch_open`` to its commit, so
the one check sees every write committed before it and none can commit between it and the
batch's commit (as in 0010).

Revision ID: 0021
Revises: 0017
"""

from alembic import op

from shared.storage.migrate import migration_module

revision = "0021"
down_revision = "0018"
branch_labels = None
depends_on = None

UPGRADE = """
SET LOCAL ROLE plant_owner;

DROP FUNCTION plant_batch_append(text, text, text, timestamptz, bigint, integer);

-- Per chunk copied into pg_temp.plant_staged (items numbered from 0 in ord, item ord at
-- first + ord, its identity in pg_temp.plant_items): with p_from = 0, first every item's key
-- readings against the live heads and against the batch's other items; the items refused are
-- returned (each once, with its holder) and nothing is written. Then the entries and heads
-- of the staged items (the chunk; emptied after), their tags written before their heads.
CREATE FUNCTION plant_batch_append(p_tenant text, p_kind text, p_actor text,
                                   p_at timestamptz, p_first bigint, p_from integer)
RETURNS TABLE (item integer, holder uuid, holder_name text)
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public AS $$
BEGIN
  PERFORM set_config('plant.tenant', p_tenant, true);
  IF p_from = 0 THEN
    -- Driven from the items: one probe of a live-readings index per item and reading.
    RETURN QUERY
      SELECT DISTINCT ON (t.ord) t.ord, t.holder, t.holder_name
        FROM (SELECT i.ord, h.entity_id AS holder, h.name AS holder_name, -1 AS rank
                FROM pg_temp.plant_items i
                JOIN entity_heads h
                  ON h.tenant_id = p_tenant AND h.kind = p_kind AND h.status <> 'deprecated'
                 AND h.unique_reading_1 = plant_key_reading(i.unique_key, 1)
              UNION ALL
              SELECT i.ord, h.entity_id, h.name, -1
                FROM pg_temp.plant_items i
                JOIN entity_heads h
                  ON h.tenant_id = p_tenant AND h.kind = p_kind AND h.status <> 'deprecated'
                 AND h.unique_reading_2 = plant_key_reading(i.unique_key, 2)
              UNION ALL
              SELECT later.ord, earlier.entity_id, earlier.name, earlier.ord
                FROM pg_temp.plant_items later
                JOIN pg_temp.plant_items earlier
                  ON plant_key_reading(earlier.unique_key, 1)
                     = plant_key_reading(later.unique_key, 1)
                 AND earlier.ord < later.ord
              UNION ALL
              SELECT later.ord, earlier.entity_id, earlier.name, earlier.ord
                FROM pg_temp.plant_items later
                JOIN pg_temp.plant_items earlier
                  ON plant_key_reading(earlier.unique_key, 2)
                     = plant_key_reading(later.unique_key, 2)
                 AND earlier.ord < later.ord) AS t
       ORDER BY t.ord, t.rank;  -- a live holder, else the earliest item
    IF FOUND THEN
      RETURN;
    END IF;
  END IF;
  INSERT INTO entity_tags (tenant_id, entity_id, kind, tag, first_index)
    SELECT DISTINCT p_tenant, i.entity_id, p_kind, t.tag, p_first + s.ord
      FROM pg_temp.plant_staged s JOIN pg_temp.plant_items i ON i.ord = s.ord
      CROSS JOIN LATERAL unnest(i.tags) AS t(tag)
     WHERE t.tag IS NOT NULL;
  INSERT INTO log_entries (tenant_id, idx, entry_type, kind, entity_id, version, body, digest,
                           leaf_hash, prev_digest, field_hashes, actor)
    SELECT p_tenant, p_first + s.ord, 'version', p_kind, i.entity_id, 1, s.body, s.digest,
           s.leaf_hash, NULL, s.field_hashes, p_actor
      FROM pg_temp.plant_staged s JOIN pg_temp.plant_items i ON i.ord = s.ord;
  PERFORM set_config('plant.batch_tagged',
                     (SELECT (p_first + min(s.ord)) || ':' || (p_first + max(s.ord))
                        FROM pg_temp.plant_staged s), true);
  INSERT INTO entity_heads (tenant_id, entity_id, kind, version, status, name, category,
                            unique_key, first_index, log_index, created_at, updated_at)
    SELECT p_tenant, i.entity_id, p_kind, 1, 'draft', i.name, i.category, i.unique_key,
           p_first + s.ord, p_first + s.ord, p_at, p_at
      FROM pg_temp.plant_staged s JOIN pg_temp.plant_items i ON i.ord = s.ord;
  PERFORM set_config('plant.batch_tagged', '', true);
  TRUNCATE pg_temp.plant_staged;  -- the next chunk's rows alone, not every earlier one too
END $$;

REVOKE ALL ON FUNCTION plant_batch_append FROM PUBLIC;
GRANT EXECUTE ON FUNCTION plant_batch_append TO plant_app;

-- As in 0011, leaving out the new heads a batch has tagged itself: those whose first index
-- is in the range plant_batch_append names in plant.batch_tagged ("first:last") while it
-- adds them.
CREATE OR REPLACE FUNCTION plant_tags_inserted() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public AS $$
DECLARE
  v_tagged text := NULLIF(current_setting('plant.batch_tagged', true), '');
  v_low bigint := -1;
  v_high bigint := -2;
BEGIN
  IF v_tagged IS NOT NULL THEN
    v_low := CAST(split_part(v_tagged, ':', 1) AS bigint);
    v_high := CAST(split_part(v_tagged, ':', 2) AS bigint);
  END IF;
  INSERT INTO entity_tags (tenant_id, entity_id, kind, tag, first_index)
    SELECT n.tenant_id, n.entity_id, n.kind, t.tag, n.first_index
      FROM new_heads n
      JOIN log_entries e ON e.tenant_id = n.tenant_id AND e.idx = n.log_index
      CROSS JOIN LATERAL plant_body_tags(e.body) AS t(tag)
     WHERE n.first_index NOT BETWEEN v_low AND v_high;
  RETURN NULL;
END $$;
"""

DOWNGRADE = """
SET LOCAL ROLE plant_owner;
DROP FUNCTION plant_batch_append(text, text, text, timestamptz, bigint, integer);
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute(DOWNGRADE)
    # plant_batch_append as 0010 defined it, with 0007's grants.
    old = migration_module("0010_name_readings").UPGRADE
    start = old.index("CREATE OR REPLACE FUNCTION plant_batch_append(")
    op.execute(old[start:].replace("CREATE OR REPLACE FUNCTION", "CREATE FUNCTION", 1))
    op.execute(
        "REVOKE ALL ON FUNCTION plant_batch_append FROM PUBLIC; "
        "GRANT EXECUTE ON FUNCTION plant_batch_append TO plant_app"
    )
    # plant_tags_inserted as 0011 defined it.
    search = migration_module("0011_search").UPGRADE
    start = search.index("CREATE FUNCTION plant_tags_inserted(")
    body = search[start : search.index("CREATE FUNCTION plant_tags_moved(")]
    op.execute(body.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    op.execute("RESET ROLE")
