"""The append's uniqueness probes read the reading indexes, whatever the statistics say
(migration 0030): with no statistics of ``entity_heads``, with statistics that do not know
the tenant (every new tenant's case) and with statistics that do, in a custom and in a
generic plan, a create's check is one probe of ``entity_heads_live_reading_1`` and one of
``_2``, and no other index of the table and no scan of it. The old single probe failed this
on a new tenant: one scan of ``_live_reading_2`` on ``(tenant_id, kind)`` alone, reading
every live head of the kind."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from shared.storage import ledger
from shared.storage.engine import database

HEADS = 300  # live skills of the tenant: a wrong plan reads them all

_APPEND = text(
    "SELECT plant_append_version(:tenant, 'skill', CAST(:entity AS uuid), 1, '\\x7b7d', "
    "'\\x00', '\\x00', NULL, '\\x00', 'bench', 'draft', :name, 'technical', :key, true, "
    "now(), NULL, CAST('{}' AS uuid[]), CAST('{}' AS bigint[]))"
)
_SCANS = text(  # the backend's scans not yet flushed: of each index, and sequential ones
    "SELECT CASE WHEN c.oid = t.oid THEN '(sequential)' ELSE c.relname END, "
    "pg_stat_get_xact_numscans(c.oid) AS n "
    "FROM pg_class c, (SELECT CAST('entity_heads' AS regclass) AS oid) AS t "
    "WHERE (c.oid = t.oid OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = t.oid)) "
    "ORDER BY 1"
)


def _seed(superuser: Engine, tenant: str, count: int = HEADS) -> None:
    """``count`` live skills with two-reading keys, written as the seeding superuser."""
    with superuser.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO entity_heads (tenant_id, entity_id, kind, version, status, name, "
                "category, unique_key, first_index, log_index, created_at, updated_at) "
                "SELECT :t, gen_random_uuid(), 'skill', 1, 'draft', 'seeded ' || i, 't', "
                "'one ' || i || U&'\\2063' || 'two ' || i, i, i, now(), now() "
                "FROM generate_series(1, :n) AS i"
            ),
            {"t": tenant, "n": count},
        )


def _probes(conn: Connection, tenant: str) -> list[tuple[str, int]]:
    """The reads of ``entity_heads`` one create makes (the counts' change over the call)."""
    with conn.begin():
        before = dict(conn.execute(_SCANS).all())
        name = f"probe {uuid.uuid4().hex}"
        conn.execute(
            _APPEND,
            {
                "tenant": tenant,
                "entity": str(uuid.uuid4()),
                "name": name,
                "key": f"{name}\u2063{name} skeleton",
            },
        )
        after = conn.execute(_SCANS).all()
    return [(scan, n - before[scan]) for scan, n in after if n != before[scan]]


@pytest.mark.parametrize("statistics", ["none", "without the tenant", "with the tenant"])
def test_a_create_probes_the_two_reading_indexes_and_reads_nothing_else(
    database_url, superuser, tenant, statistics
):
    if statistics != "none":
        if statistics == "with the tenant":
            _seed(superuser, tenant)
        with superuser.connect() as conn:
            conn.execute(text("ANALYZE entity_heads"))
            conn.commit()
        if statistics == "without the tenant":
            _seed(superuser, tenant)
    else:
        _seed(superuser, tenant)
        with superuser.begin() as conn:
            conn.execute(
                text("DELETE FROM pg_statistic WHERE starelid = CAST('entity_heads' AS regclass)")
            )
    expected = [("entity_heads_live_reading_1", 1), ("entity_heads_live_reading_2", 1)]
    try:
        _check(tenant, statistics, expected)
    finally:  # later tests plan with statistics again (the deletion above is committed)
        with superuser.connect() as conn:
            conn.execute(text("ANALYZE entity_heads"))


def _check(tenant: str, statistics: str, expected: list[tuple[str, int]]) -> None:
    """A create's reads of ``entity_heads`` as ``plant_app``, in a custom and a generic plan."""
    with database().engine.connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one() == "plant_app"
        for mode in ("force_custom_plan", "force_generic_plan"):
            conn.execute(text(f"SET plan_cache_mode = {mode}"))
            conn.commit()
            for _ in range(2):  # the plan as first made, then as cached
                assert _probes(conn, tenant) == expected, (statistics, mode)
        conn.execute(text("RESET plan_cache_mode"))
        conn.commit()


_INDEX_READS = text(  # index entries the backend's scans returned, not yet flushed
    "SELECT c.relname, pg_stat_get_xact_tuples_returned(c.oid) FROM pg_class c "
    "WHERE c.relname IN ('entity_heads_live_reading_1', 'entity_heads_live_reading_2')"
)
ITEMS = 40
BATCH_HEADS = 20_000  # against 41 items: walking them costs the planner far more than probing


def test_a_batch_key_check_can_probe_the_reading_indexes_item_by_item(
    database_url, superuser, tenant
):
    """Migration 0034: the batch's key check may look each item's readings up in the
    reading indexes (the plan the planner takes into a large tenant, where hashing the items
    with every live head of the kind read a million index entries). With hash and merge
    joins off, the nested loop it is left with probes: the reading indexes return the one
    holder, not every live head once an item. Before 0034 the join's reading was an
    expression the tenant policy keeps out of an index condition, and each item read every
    seeded head of the kind."""
    _seed(superuser, tenant, BATCH_HEADS)
    try:
        refused, read, held = _key_check(superuser, tenant)
    finally:  # no other test plans with this tenant's heads in the statistics
        with superuser.begin() as conn:
            conn.execute(text("DELETE FROM entity_heads WHERE tenant_id = :t"), {"t": tenant})
        with superuser.connect() as conn:
            conn.execute(text("ANALYZE entity_heads"))
    assert [tuple(r) for r in refused] == [(ITEMS, held, "seeded 7")]
    assert read["entity_heads_live_reading_1"] == 1, read  # the holder, found by its probe
    assert read["entity_heads_live_reading_2"] == 0, read


def _key_check(superuser: Engine, tenant: str) -> tuple[list, dict[str, int], object]:
    """``plant_batch_items`` as ``plant_app`` over 41 items, the last holding a seeded head's
    first reading, with hash and merge joins off: its refusals, the reading indexes' entries
    it read, and the holder's id."""
    with superuser.connect() as conn:
        conn.execute(text("ANALYZE entity_heads"))
        held = conn.execute(
            text("SELECT entity_id FROM entity_heads WHERE tenant_id = :t AND name = :n"),
            {"t": tenant, "n": "seeded 7"},
        ).scalar_one()
    with database().engine.connect() as conn, conn.begin():
        assert conn.execute(text("SELECT current_user")).scalar_one() == "plant_app"
        conn.execute(text("SET LOCAL enable_hashjoin = off"))
        conn.execute(text("SET LOCAL enable_mergejoin = off"))
        conn.execute(ledger._ITEMS)  # the batch's own temporary table
        conn.execute(
            text(
                "INSERT INTO pg_temp.plant_items SELECT i, gen_random_uuid(), 'new ' || i, "
                "'technical', 'new ' || i || U&'\\2063' || 'new two ' || i, '{}' "
                "FROM generate_series(0, :n - 1) AS i"
            ),
            {"n": ITEMS},
        )
        conn.execute(  # the last item's first reading is a seeded head's
            text(
                "INSERT INTO pg_temp.plant_items VALUES "
                "(:n, gen_random_uuid(), 'taken', 'technical', 'one 7' || U&'\\2063' || 'x', '{}')"
            ),
            {"n": ITEMS},
        )
        # the batch's items known to the planner as they are (the estimates, not the
        # plan's possibility, decide between probing the heads by item and walking them)
        conn.execute(text("ANALYZE pg_temp.plant_items"))
        before = dict(conn.execute(_INDEX_READS).all())
        refused = conn.execute(
            text("SELECT * FROM plant_batch_items(:t, 'skill', 0)"), {"t": tenant}
        ).all()
        after = dict(conn.execute(_INDEX_READS).all())
        conn.rollback()
    return refused, {name: after[name] - before[name] for name in after}, held
