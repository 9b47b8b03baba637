"""Names compared as people read them: a skill's unique key holds two readings of its name.

A skill's key was its name trimmed and case folded, so "Rust" + U+200B, or "ust" after a
fullwidth or a script R, were new names beside "Rust". It now holds the two readings of
``shared/rules/names.py`` (NFKC, default-ignorables removed, case folded, and UTS #39 skeletons),
separated by U+2063, and two live entities of a kind may share neither (an agent's key has
one reading, as before). Only the heads change: no logged byte does, and the audit derives
the key as the writes do.

A unique index compares whole keys only, so uniqueness is now checked by the two write
functions, reading by reading (``unique_reading_1`` and ``_2``: columns the database derives
from ``unique_key``, indexed among live heads), while they hold the tenant's log counter:
every write of a tenant takes that row lock before it checks and keeps it to its commit, so
each check sees every write committed before it and none commits between another's check
and its commit. ``plant_append_version`` now checks after moving the counter (it checked
before); ``plant_batch_append`` checks each chunk against the live heads before it adds the
chunk's (the batch holds the counter since ``plant_batch_open``). An amendment that keeps
its key is not checked again: it takes no reading from anyone.

Existing heads are re-keyed here. Skills that were live together and now read alike are
kept as they are, each with its own key (nothing is lost and the audit still agrees); the
rule holds for every write from now on: a new entity, a rename or a return from
``deprecated`` onto a reading a live one holds is refused with the holder's id (PL409) and,
as its detail, the holder's name.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Callable

from alembic import op
from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared.rules import names
from shared.storage.migrate import migration_module

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UPGRADE = """
SET LOCAL ROLE plant_owner;

-- Reading 1 or 2 of a unique key (NULL where the key has no such reading).
CREATE FUNCTION plant_key_reading(p_key text, p_place integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT NULLIF(pg_catalog.split_part(p_key, U&'\\2063', p_place), '')
$$;
REVOKE ALL ON FUNCTION plant_key_reading FROM PUBLIC;
GRANT EXECUTE ON FUNCTION plant_key_reading TO plant_app;

-- Plain columns, not expression indexes: under row-level security the application role's
-- queries may use an index on an expression only if its functions are leakproof.
ALTER TABLE entity_heads
  ADD COLUMN unique_reading_1 text GENERATED ALWAYS AS (plant_key_reading(unique_key, 1)) STORED,
  ADD COLUMN unique_reading_2 text GENERATED ALWAYS AS (plant_key_reading(unique_key, 2)) STORED;
DROP INDEX entity_heads_unique_live;
CREATE INDEX entity_heads_live_reading_1 ON entity_heads (tenant_id, kind, unique_reading_1)
  WHERE status <> 'deprecated';
CREATE INDEX entity_heads_live_reading_2 ON entity_heads (tenant_id, kind, unique_reading_2)
  WHERE status <> 'deprecated';

-- As in 0007, but the uniqueness check comes after the counter moved (see the docstring),
-- compares readings, and is left out for an amendment that keeps its key.
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
  ELSE
    UPDATE entity_heads SET version = p_version, status = p_status, name = p_name,
           category = p_category, unique_key = p_unique_key, log_index = v_idx,
           updated_at = p_at
     WHERE entity_id = p_entity;
  END IF;
  RETURN v_idx;
END $$;

-- As in 0007, with the staged keys' readings checked against the live heads before the
-- chunk's heads are added (the caller refuses two items of one batch that read alike).
CREATE OR REPLACE FUNCTION plant_batch_append(p_tenant text, p_kind text, p_actor text,
                                              p_at timestamptz, p_first bigint,
                                              p_from integer)
RETURNS void
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public AS $$
DECLARE
  v_first text[];
  v_second text[];
  v_holder uuid;
  v_holder_name text;
BEGIN
  PERFORM set_config('plant.tenant', p_tenant, true);
  SELECT array_agg(plant_key_reading(s.unique_key, 1)),
         array_agg(plant_key_reading(s.unique_key, 2))
    INTO v_first, v_second
    FROM pg_temp.plant_staged s WHERE s.ord >= p_from AND s.unique_key IS NOT NULL;
  -- Reading by reading, a probe of its index for each staged item (a join to the arrays
  -- unnested: "= ANY (array)" would scan every live head of the kind instead).
  SELECT h.entity_id, h.name INTO v_holder, v_holder_name
    FROM unnest(v_first) AS r(reading) JOIN entity_heads h
      ON h.kind = p_kind AND h.status <> 'deprecated' AND h.unique_reading_1 = r.reading
   LIMIT 1;
  IF NOT FOUND THEN
    SELECT h.entity_id, h.name INTO v_holder, v_holder_name
      FROM unnest(v_second) AS r(reading) JOIN entity_heads h
        ON h.kind = p_kind AND h.status <> 'deprecated' AND h.unique_reading_2 = r.reading
     LIMIT 1;
  END IF;
  IF FOUND THEN
    RAISE EXCEPTION '%', v_holder USING ERRCODE = 'PL409', DETAIL = v_holder_name;
  END IF;
  INSERT INTO log_entries (tenant_id, idx, entry_type, kind, entity_id, version, body, digest,
                           leaf_hash, prev_digest, field_hashes, actor)
    SELECT p_tenant, p_first + s.ord, 'version', p_kind, s.entity_id, 1, s.body, s.digest,
           s.leaf_hash, NULL, s.field_hashes, p_actor
      FROM pg_temp.plant_staged s WHERE s.ord >= p_from;
  INSERT INTO entity_heads (tenant_id, entity_id, kind, version, status, name, category,
                            unique_key, first_index, log_index, created_at, updated_at)
    SELECT p_tenant, s.entity_id, p_kind, 1, 'draft', s.name, s.category, s.unique_key,
           p_first + s.ord, p_first + s.ord, p_at, p_at
      FROM pg_temp.plant_staged s WHERE s.ord >= p_from;
END $$;
"""

DOWNGRADE = """
SET LOCAL ROLE plant_owner;
ALTER TABLE entity_heads DROP COLUMN unique_reading_1, DROP COLUMN unique_reading_2;
CREATE UNIQUE INDEX entity_heads_unique_live
  ON entity_heads (tenant_id, kind, unique_key)
  WHERE unique_key IS NOT NULL AND status <> 'deprecated';
"""

REKEY_CHUNK = 10_000  # skill heads read and re-keyed per statement


def _rekey(conn: Connection, key: Callable[[str], str]) -> None:
    """Give every skill head (of every tenant, deprecated too) the key ``key`` derives from
    its name. Row-level security is lifted for the owner inside this transaction only (the
    table is locked meanwhile), so the owner sees every tenant's heads."""
    conn.execute(text("ALTER TABLE entity_heads NO FORCE ROW LEVEL SECURITY"))
    after = ("", "00000000-0000-0000-0000-000000000000")
    while True:
        rows = conn.execute(
            text(
                "SELECT tenant_id, CAST(entity_id AS text), name FROM entity_heads "
                "WHERE kind = 'skill' AND (tenant_id, entity_id) > (:t, CAST(:e AS uuid)) "
                "ORDER BY tenant_id, entity_id LIMIT :n"
            ),
            {"t": after[0], "e": after[1], "n": REKEY_CHUNK},
        ).all()
        if not rows:
            break
        conn.execute(
            text(
                "UPDATE entity_heads h SET unique_key = u.k FROM unnest("
                "CAST(:t AS text[]), CAST(:e AS uuid[]), CAST(:k AS text[])) AS u(t, e, k) "
                "WHERE h.tenant_id = u.t AND h.entity_id = u.e"
            ),
            {
                "t": [r[0] for r in rows],
                "e": [r[1] for r in rows],
                "k": [key(r[2]) for r in rows],
            },
        )
        after = (rows[-1][0], rows[-1][1])
    conn.execute(text("ALTER TABLE entity_heads FORCE ROW LEVEL SECURITY"))


def _key_before(name: str) -> str:
    """A skill's key until this revision."""
    return "name:" + name.strip().casefold()


def upgrade() -> None:
    op.execute(UPGRADE)
    _rekey(op.get_bind(), names.unique_key)
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    _rekey(op.get_bind(), _key_before)
    op.execute(DOWNGRADE)
    # The two write functions as 0007 defined them.
    old = migration_module("0007_packed_digests").UPGRADE
    for start, end in (
        ("CREATE FUNCTION plant_append_version(", "REVOKE ALL ON FUNCTION plant_append_version"),
        ("CREATE FUNCTION plant_batch_append(", "CREATE FUNCTION plant_batch_close("),
    ):
        body = old[old.index(start) : old.index(end)]
        op.execute(body.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    op.execute("DROP FUNCTION plant_key_reading(text, integer)")
    op.execute("RESET ROLE")
