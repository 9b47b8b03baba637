"""Bulk creates check every key and write every tag while the first chunk is being encoded
(issue 27).

0021's first append checked every item's key and then wrote its chunk's tags, entries and
heads; each later append wrote its chunk's tags, entries and heads. The server sat idle while
the client encoded the first chunk, and the tags (about two rows an item, two indexes) were
written chunk by chunk behind the encoding. Both need only the items' identities, which the
client copies into ``pg_temp.plant_items`` before it encodes any document, so now:

- ``plant_batch_items``, once, right after that copy (the client's encoding thread already
  making the first chunk): every item's key readings against the live heads and against the
  batch's other items, as 0021's first append did (the items refused are returned, each once
  with its holder, and nothing is written, so the caller names them all in one 409);
  otherwise every item's tags, in one statement.
- ``plant_batch_append``, per chunk copied into ``pg_temp.plant_staged``: its entries and
  heads (since 0023 no trigger writes a head's tags, and 0021's ``plant.batch_tagged``
  setting, which kept it off a batch's range, is gone); the staging table emptied after.

The batch still holds the tenant's log counter from ``plant_batch_open`` to its commit, so
the check sees every write committed before it and none can commit between it and the
batch's commit; a failure anywhere rolls back the tags with the rest.

Revision ID: 0024
Revises: 0023
"""

from alembic import op

from shared.storage.migrate import migration_module

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

UPGRADE = """
SET LOCAL ROLE plant_owner;

DROP FUNCTION plant_batch_append(text, text, text, timestamptz, bigint, integer);

-- Once, every item in pg_temp.plant_items (item ord at p_first + ord): every item's key
-- readings against the live heads and against the batch's other items; the items refused are
-- returned (each once, with its holder) and nothing is written. Otherwise every item's tags.
CREATE FUNCTION plant_batch_items(p_tenant text, p_kind text, p_first bigint)
RETURNS TABLE (item integer, holder uuid, holder_name text)
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public AS $$
BEGIN
  PERFORM set_config('plant.tenant', p_tenant, true);
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
  INSERT INTO entity_tags (tenant_id, entity_id, kind, tag, first_index)
    SELECT DISTINCT p_tenant, i.entity_id, p_kind, t.tag, p_first + i.ord
      FROM pg_temp.plant_items i CROSS JOIN LATERAL unnest(i.tags) AS t(tag)
     WHERE t.tag IS NOT NULL;
END $$;

-- Per chunk copied into pg_temp.plant_staged: its entries and heads (their tags written by
-- plant_batch_items); emptied after.
CREATE FUNCTION plant_batch_append(p_tenant text, p_kind text, p_actor text,
                                   p_at timestamptz, p_first bigint)
RETURNS void
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public AS $$
BEGIN
  PERFORM set_config('plant.tenant', p_tenant, true);
  INSERT INTO log_entries (tenant_id, idx, entry_type, kind, entity_id, version, body, digest,
                           leaf_hash, prev_digest, field_hashes, actor)
    SELECT p_tenant, p_first + s.ord, 'version', p_kind, i.entity_id, 1, s.body, s.digest,
           s.leaf_hash, NULL, s.field_hashes, p_actor
      FROM pg_temp.plant_staged s JOIN pg_temp.plant_items i ON i.ord = s.ord;
  INSERT INTO entity_heads (tenant_id, entity_id, kind, version, status, name, category,
                            unique_key, first_index, log_index, created_at, updated_at)
    SELECT p_tenant, i.entity_id, p_kind, 1, 'draft', i.name, i.category, i.unique_key,
           p_first + s.ord, p_first + s.ord, p_at, p_at
      FROM pg_temp.plant_staged s JOIN pg_temp.plant_items i ON i.ord = s.ord;
  TRUNCATE pg_temp.plant_staged;  -- the next chunk's rows alone, not every earlier one too
END $$;

REVOKE ALL ON FUNCTION plant_batch_items, plant_batch_append FROM PUBLIC;
GRANT EXECUTE ON FUNCTION plant_batch_items, plant_batch_append TO plant_app;
"""

DOWNGRADE = """
SET LOCAL ROLE plant_owner;
DROP FUNCTION plant_batch_items(text, text, bigint);
DROP FUNCTION plant_batch_append(text, text, text, timestamptz, bigint);
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute(DOWNGRADE)
    # plant_batch_append as 0021 defined it, with its grants.
    old = migration_module("0021_batch_keys_first").UPGRADE
    start = old.index("CREATE FUNCTION plant_batch_append(")
    op.execute(old[start : old.index("-- As in 0011")])
    op.execute("RESET ROLE")
