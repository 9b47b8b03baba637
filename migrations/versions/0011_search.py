"""Search: a folded name on each head and a table of each head's tags, both indexed.

``GET /registry/{kind}?q=`` matches a name by prefix after folding (``plant_fold_name``:
NFKC, then ``lower()`` under the database's character type), and ``?tag=`` matches one tag
exactly. Both are served by btree indexes whose operators are leakproof, so the application
role's queries use them under row-level security (an index on an expression, or ``LIKE``,
``@>`` and ``@@``, none leakproof, would be applied only after the tenant's rows were read):

- ``entity_heads.name_folded``: a column the database derives from ``name`` (``COLLATE "C"``,
  so its order is code point order and a prefix is a range: from p to ``plant_prefix_end(p)``);
- ``entity_tags``: one row per tag of each head's current version, read from the logged body
  by triggers on ``entity_heads`` (one per statement on insert: a batch of 10,000 costs one
  join; one per row on a move of ``log_index``). The write functions are unchanged.

Neither is something the audit trusts: both are derived from what it checks (the head's
name, and the logged body its head points at) and serve only to find entities; what is
served is still the logged version. Existing heads are backfilled here.

``plant_app`` may read ``alembic_version``, so ``healthz?details=1`` can report the revision.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UPGRADE = """
GRANT SELECT ON alembic_version TO plant_app;
SET LOCAL ROLE plant_owner;

-- A name (or a query) as search compares it.
CREATE FUNCTION plant_fold_name(p text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT pg_catalog.lower(pg_catalog.normalize(p, 'NFKC'))
$$;
REVOKE ALL ON FUNCTION plant_fold_name FROM PUBLIC;
GRANT EXECUTE ON FUNCTION plant_fold_name TO plant_app;

-- The least string above every string that starts with p, in code point order (p with its
-- trailing U+10FFFF removed and its last character incremented, past the surrogates); NULL
-- when p is only U+10FFFF characters (then nothing is above: such a q matches nothing).
CREATE FUNCTION plant_prefix_end(p text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  v_rest text := p;
  v_last integer;
BEGIN
  WHILE v_rest <> '' LOOP
    v_last := pg_catalog.ascii(pg_catalog.right(v_rest, 1));
    v_rest := pg_catalog.left(v_rest, -1);
    IF v_last < 1114111 THEN
      RETURN v_rest || pg_catalog.chr(CASE WHEN v_last = 55295 THEN 57344 ELSE v_last + 1 END);
    END IF;
  END LOOP;
  RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION plant_prefix_end FROM PUBLIC;
GRANT EXECUTE ON FUNCTION plant_prefix_end TO plant_app;

ALTER TABLE entity_heads
  ADD COLUMN name_folded text COLLATE "C" GENERATED ALWAYS AS (plant_fold_name(name)) STORED;
CREATE INDEX entity_heads_by_name ON entity_heads (tenant_id, kind, name_folded);

-- The tags of a logged body: none when it has no metadata.tags list, or is not JSON (a
-- tampered body: the audit reports it; a search index must not refuse the write or the test).
CREATE FUNCTION plant_body_tags(p_body bytea) RETURNS SETOF text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
  v_tags jsonb;
BEGIN
  BEGIN
    v_tags := pg_catalog.convert_from(p_body, 'UTF8')::jsonb -> 'metadata' -> 'tags';
  EXCEPTION WHEN data_exception THEN
    RETURN;
  END;
  IF pg_catalog.jsonb_typeof(v_tags) = 'array' THEN
    RETURN QUERY SELECT DISTINCT t FROM pg_catalog.jsonb_array_elements_text(v_tags) AS t
                  WHERE t IS NOT NULL;
  END IF;
END $$;
REVOKE ALL ON FUNCTION plant_body_tags FROM PUBLIC;
GRANT EXECUTE ON FUNCTION plant_body_tags TO plant_app;

CREATE TABLE entity_tags (
  tenant_id   text   NOT NULL,
  entity_id   uuid   NOT NULL,
  kind        text   NOT NULL,
  tag         text   NOT NULL,
  first_index bigint NOT NULL,
  PRIMARY KEY (tenant_id, entity_id, tag)
);
CREATE INDEX entity_tags_by_tag ON entity_tags (tenant_id, kind, tag, first_index);
REVOKE ALL ON entity_tags FROM PUBLIC;
GRANT SELECT, INSERT, DELETE ON entity_tags TO plant_app;
ALTER TABLE entity_tags ENABLE ROW LEVEL SECURITY;
ALTER TABLE entity_tags FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON entity_tags
  USING (tenant_id = current_setting('plant.tenant', true))
  WITH CHECK (tenant_id = current_setting('plant.tenant', true));

CREATE FUNCTION plant_tags_inserted() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public AS $$
BEGIN
  INSERT INTO entity_tags (tenant_id, entity_id, kind, tag, first_index)
    SELECT n.tenant_id, n.entity_id, n.kind, t.tag, n.first_index
      FROM new_heads n
      JOIN log_entries e ON e.tenant_id = n.tenant_id AND e.idx = n.log_index
      CROSS JOIN LATERAL plant_body_tags(e.body) AS t(tag);
  RETURN NULL;
END $$;

CREATE FUNCTION plant_tags_moved() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public AS $$
BEGIN
  DELETE FROM entity_tags WHERE tenant_id = NEW.tenant_id AND entity_id = NEW.entity_id;
  INSERT INTO entity_tags (tenant_id, entity_id, kind, tag, first_index)
    SELECT NEW.tenant_id, NEW.entity_id, NEW.kind, t.tag, NEW.first_index
      FROM log_entries e CROSS JOIN LATERAL plant_body_tags(e.body) AS t(tag)
     WHERE e.tenant_id = NEW.tenant_id AND e.idx = NEW.log_index;
  RETURN NULL;
END $$;

CREATE TRIGGER entity_heads_tags_inserted AFTER INSERT ON entity_heads
  REFERENCING NEW TABLE AS new_heads FOR EACH STATEMENT EXECUTE FUNCTION plant_tags_inserted();
CREATE TRIGGER entity_heads_tags_moved AFTER UPDATE OF log_index ON entity_heads
  FOR EACH ROW WHEN (OLD.log_index IS DISTINCT FROM NEW.log_index)
  EXECUTE FUNCTION plant_tags_moved();

-- Backfill every tenant's heads (row-level security lifted for the owner in this
-- transaction only).
ALTER TABLE entity_heads NO FORCE ROW LEVEL SECURITY;
ALTER TABLE log_entries NO FORCE ROW LEVEL SECURITY;
ALTER TABLE entity_tags NO FORCE ROW LEVEL SECURITY;
INSERT INTO entity_tags (tenant_id, entity_id, kind, tag, first_index)
  SELECT h.tenant_id, h.entity_id, h.kind, t.tag, h.first_index
    FROM entity_heads h
    JOIN log_entries e ON e.tenant_id = h.tenant_id AND e.idx = h.log_index
    CROSS JOIN LATERAL plant_body_tags(e.body) AS t(tag);
ALTER TABLE entity_heads FORCE ROW LEVEL SECURITY;
ALTER TABLE log_entries FORCE ROW LEVEL SECURITY;
ALTER TABLE entity_tags FORCE ROW LEVEL SECURITY;
ANALYZE entity_heads;
ANALYZE entity_tags;
RESET ROLE;
"""

DOWNGRADE = """
SET LOCAL ROLE plant_owner;
DROP TRIGGER entity_heads_tags_moved ON entity_heads;
DROP TRIGGER entity_heads_tags_inserted ON entity_heads;
DROP FUNCTION plant_tags_moved();
DROP FUNCTION plant_tags_inserted();
DROP TABLE entity_tags;
DROP FUNCTION plant_body_tags(bytea);
ALTER TABLE entity_heads DROP COLUMN name_folded;
DROP FUNCTION plant_prefix_end(text);
DROP FUNCTION plant_fold_name(text);
RESET ROLE;
REVOKE SELECT ON alembic_version FROM plant_app;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
