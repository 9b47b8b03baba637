"""Migration 0025 moves the map's nodes into strata (and its downgrade moves them back): the
nodes a node per row, moved down from strata, are the map's nodes; moved up again, the strata
are byte for byte those the seals wrote."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from shared import tlog
from shared.storage import map_strata, migrate
from tests.support.seeding import seed_skills


def _strata(conn, tenant: str) -> dict[bytes, bytes]:
    rows = conn.execute(
        text("SELECT prefix, nodes FROM heads_map_strata WHERE tenant_id = :t"), {"t": tenant}
    )
    return {bytes(p): bytes(n) for p, n in rows}


def test_nodes_move_down_to_rows_and_back_up_to_the_same_strata(superuser, tenant):
    seed_skills(superuser, tenant, 0, 2500)  # strata on three levels, full and sparse
    tlog.seal(tenant)
    seed_skills(superuser, tenant, 2501, 300)  # after the first map commit, at 2500
    tlog.seal(tenant)
    moves = migrate.migration_module("0025_map_strata")
    nodes_table = migrate.migration_module("0015_heads_map").NODES
    # in one transaction rolled back at the end (the database is shared; the fixture's
    # engine autocommits)
    engine = create_engine(superuser.url, poolclass=NullPool)
    with engine.connect() as conn:
        before = _strata(conn, tenant)
        assert {len(p) for p in before} >= {0, 1, 2}
        whole = map_strata.Strata()
        for prefix, data in before.items():
            whole.add(prefix, data)
        conn.execute(text(nodes_table))
        conn.execute(text("ALTER TABLE heads_map_strata NO FORCE ROW LEVEL SECURITY"))
        # the moves take every tenant's strata: other tests' tenants hold strata an attack
        # planted (a 32-byte prefix with nodes below it, which no node row can hold), so
        # this transaction moves this tenant's alone
        conn.execute(text("DELETE FROM heads_map_strata WHERE tenant_id <> :t"), {"t": tenant})
        conn.execute(text(moves.MOVE_DOWN))
        rows = conn.execute(
            text("SELECT depth, prefix, node FROM heads_map_nodes WHERE tenant_id = :t"),
            {"t": tenant},
        ).all()
        down = {}
        for depth, prefix, node in rows:
            prefix = bytes(prefix)
            index = int.from_bytes(prefix, "big") >> (8 * len(prefix) - depth) if depth else 0
            assert prefix == (index << (8 * len(prefix) - depth)).to_bytes(len(prefix), "big")
            down[(depth, index)] = bytes(node)
        assert down == dict(whole)
        conn.execute(text(moves.STRATA))
        conn.execute(text(moves.MOVE_UP))
        assert _strata(conn, tenant) == before
        conn.rollback()
    engine.dispose()
    with superuser.connect() as conn:  # as the migrations left it
        owner = conn.execute(
            text("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = :n"),
            {"n": "heads_map_strata"},
        ).scalar_one()
        assert owner == "plant_owner" and _strata(conn, tenant) == before
