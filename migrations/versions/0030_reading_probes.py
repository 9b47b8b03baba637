"""The uniqueness probes use the reading indexes whatever the statistics say (issue 27).

``plant_append_version`` looked for a live head holding either reading of the new key with
one statement (``unique_reading_1 = .. OR unique_reading_2 = ..``). For a tenant the
statistics do not know (a new one; every benchmark tenant) the planner estimates one row for
``(tenant_id, kind)`` alone, so every index starting with those columns costs the same to it,
and it chose one that cannot use the reading: the probe read every live head of the kind
(0.31 of a 1.05 ms call at 400 heads, growing with the tenant). No estimate separates the
paths there, so the choice is made not to depend on one:

- each reading index's predicate now also holds ``plant_reading_held(<its reading>)``, a
  function that is true for any reading (strict: false for none) but that the planner is told
  costs 10,000 operators a call (``COST``);
- each probe states that same clause. On the reading index the clause is implied by the
  predicate and never evaluated; on any other path (another index, a bitmap, a scan) it is a
  filter priced at 25 units a row, against a few units for a whole index probe, so the
  reading index wins even at an estimate of one row.

The probes are one statement per reading (``OR`` cannot use two partial indexes but through a
``BitmapOr``), the second only when the first found no holder, so a key refused is refused
with the holder of its first reading when both are held, else of its second, as before when
only one was. ``plant_batch_items`` states the clause in its two probes too, so its joins keep
the indexes. Which rows are refused does not change: a reading is held or not exactly as
before; heads without a reading (kinds without keys) are no longer in these indexes at all.

Revision ID: 0030
Revises: 0028
"""

from alembic import op

from shared.storage.migrate import migration_module

revision = "0030"
down_revision = "0028"
branch_labels = None
depends_on = None

PROBE_OLD = """       AND (unique_reading_1 = plant_key_reading(p_unique_key, 1)
            OR unique_reading_2 = plant_key_reading(p_unique_key, 2))
     LIMIT 1;
"""
PROBE_NEW = """       AND unique_reading_1 = plant_key_reading(p_unique_key, 1)
       AND plant_reading_held(unique_reading_1)
     LIMIT 1;
    IF NOT FOUND THEN
      SELECT entity_id, name INTO v_holder, v_holder_name FROM entity_heads
       WHERE kind = p_kind AND status <> 'deprecated' AND entity_id <> p_entity
         AND unique_reading_2 = plant_key_reading(p_unique_key, 2)
         AND plant_reading_held(unique_reading_2)
       LIMIT 1;
    END IF;
"""


def _indexes(held: bool) -> str:
    """The two live-reading indexes, with or without the costly clause in their predicate."""
    out = ""
    for n in (1, 2):
        extra = f" AND plant_reading_held(unique_reading_{n})" if held else ""
        out += (
            f"DROP INDEX entity_heads_live_reading_{n};\n"
            f"CREATE INDEX entity_heads_live_reading_{n} ON entity_heads "
            f"(tenant_id, kind, unique_reading_{n}) WHERE status <> 'deprecated'{extra};\n"
        )
    return out


def _functions(new: bool) -> str:
    """``plant_append_version`` as 0023 left it and ``plant_batch_items`` as 0024 did, or
    both with the probes of this revision."""
    append = migration_module("0023_tags_from_the_append").UPGRADE
    append = append[append.index("CREATE OR REPLACE FUNCTION plant_append_version(") :]
    batch = migration_module("0024_batch_tags_first").UPGRADE
    start = batch.index("CREATE FUNCTION plant_batch_items(")
    batch = batch[start : batch.index("-- Per chunk copied into", start)]
    batch = batch.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
    if new:
        assert append.count(PROBE_OLD) == 1
        append = append.replace(PROBE_OLD, PROBE_NEW)
        for n in (1, 2):
            old = f"AND h.unique_reading_{n} = plant_key_reading(i.unique_key, {n})\n"
            assert batch.count(old) == 1
            batch = batch.replace(
                old, f"{old}               AND plant_reading_held(h.unique_reading_{n})\n"
            )
    return append + "\n" + batch


HELD = """
-- True for any reading; strict, so false for none. Priced far above what it costs, so that a
-- path evaluating it (any path but the reading's own index, whose predicate implies it) is
-- never chosen for a probe that states it.
CREATE FUNCTION plant_reading_held(p_reading text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE COST 10000 AS $$
BEGIN
  RETURN true;
END $$;
REVOKE ALL ON FUNCTION plant_reading_held FROM PUBLIC;
GRANT EXECUTE ON FUNCTION plant_reading_held TO plant_app;
"""


def upgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute(HELD)
    op.execute(_indexes(held=True))
    op.execute(_functions(new=True))
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute(_functions(new=False))
    op.execute(_indexes(held=False))
    op.execute("DROP FUNCTION plant_reading_held(text)")
    op.execute("RESET ROLE")
