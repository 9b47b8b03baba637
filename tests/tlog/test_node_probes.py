"""Node reads as the application role probe one index entry per key: under the tenant
isolation policy, a probe that compared the key's shifted bits read every node of the tenant
(migration 0008)."""

from __future__ import annotations

from sqlalchemy import text

from shared import tlog
from shared.integrity import merkle
from shared.storage import tree
from shared.storage.engine import database
from tests.support.seeding import seed_skills


def test_node_reads_fetch_a_few_blocks_per_key_not_the_tenants_tree(
    superuser, tenant, database_url
):
    seed_skills(superuser, tenant, 0, 6000)
    tlog.seal(tenant)  # about 12,000 nodes: a few hundred heap pages
    keys = sorted(merkle.inclusion_keys(4321, 6000) | merkle.consistency_keys(777, 6000))
    with database().transaction(tenant) as conn:
        before = conn.execute(text(_FETCHED)).scalar_one()
        nodes = tree.DbNodes(conn).get_nodes(keys)
        fetched = conn.execute(text(_FETCHED)).scalar_one() - before
    assert set(nodes) == set(keys)
    assert fetched <= 4 * len(keys), (fetched, len(keys))


_FETCHED = "SELECT pg_stat_get_xact_blocks_fetched(CAST('log_nodes' AS regclass))"


def _fetched(conn, table: str) -> int:
    return int(
        conn.execute(
            text("SELECT pg_stat_get_xact_blocks_fetched(CAST(:t AS regclass))"), {"t": table}
        ).scalar_one()
    )


def test_map_paths_edge_checks_and_current_proofs_probe_not_scan(superuser, tenant, database_url):
    """As the application role, under the tenant isolation policy: the map's strata read a
    level at a time, the seal's and the audit's per-level checks of the log's right edge,
    and the one-statement current proof each read a few blocks per row, not the tenant's
    tables (PostgreSQL 15 makes no index condition of a comparison with an expression over
    the outer row under RLS: run with PLANT_TEST_SERVER_URL on a 15 server, the map's walk,
    a node per row then, read 2,920 blocks here before that fix; 16, the embedded server,
    planned it as probes)."""
    import uuid

    from shared.integrity import heads_map
    from shared.storage import map_nodes, proof_reads

    seed_skills(superuser, tenant, 0, 6000)
    tlog.seal(tenant)  # about 12,000 log nodes and 14,000 map nodes in ~500 strata
    with superuser.connect() as su:
        ids = (
            su.execute(
                text(
                    "SELECT CAST(entity_id AS text) FROM entity_heads WHERE tenant_id = :t LIMIT 5"
                ),
                {"t": tenant},
            )
            .scalars()
            .all()
        )
        strata = su.execute(
            text("SELECT count(*) FROM heads_map_strata WHERE tenant_id = :t"), {"t": tenant}
        ).scalar_one()
    keys = [heads_map.entity_key(uuid.UUID(i)) for i in ids]
    assert strata > 300
    with database().transaction(tenant) as conn:
        size = tree.latest_checkpoint(conn).size  # type: ignore[union-attr]
        before = _fetched(conn, "heads_map_strata")
        store = map_nodes.DbMapNodes(conn)
        store.get_paths(keys)
        assert 5 < store.rows_read <= 1 + 5 * 3 and store.queries <= 4
        assert _fetched(conn, "heads_map_strata") - before <= 4 * store.rows_read
        before = _fetched(conn, "log_nodes")
        assert tree.nodes_beyond(conn, size) == []
        assert tree.nodes_absent(conn, size - 50, size) == []
        assert _fetched(conn, "log_nodes") - before <= 4 * 64 + 2 * 50
        before = _fetched(conn, "log_nodes") + _fetched(conn, "heads_map_strata")
        parts = proof_reads.current_parts(conn, tenant, ids[0], None)
        assert parts is not None and parts.version is not None
        read = len(parts.log_nodes) + len(parts.map_nodes.rows)
        assert _fetched(conn, "log_nodes") + _fetched(conn, "heads_map_strata") - before <= 4 * read


def test_strata_read_a_level_at_a_time_hold_the_paths_of_the_map(superuser, tenant, database_url):
    """The strata read for many keys, a level of strata a statement, hold every node of
    their paths (present or absent keys) as the whole stored map has it, and what a seal
    builds from them is what it builds from the whole map."""
    import os

    from shared.integrity import heads_map, sparse_merkle
    from shared.storage import map_nodes, map_strata

    seed_skills(superuser, tenant, 0, 3000)
    tlog.seal(tenant)
    with superuser.connect() as su:
        ids = (
            su.execute(
                text("SELECT entity_id FROM entity_heads WHERE tenant_id = :t"), {"t": tenant}
            )
            .scalars()
            .all()
        )
        whole = map_strata.Strata()
        for prefix, nodes in su.execute(
            text("SELECT prefix, nodes FROM heads_map_strata WHERE tenant_id = :t"), {"t": tenant}
        ):
            whole.add(bytes(prefix), bytes(nodes))
    memory = sparse_merkle.MemoryNodeStore()
    memory.nodes = dict(whole)
    keys = [heads_map.entity_key(i) for i in ids[:400]] + [os.urandom(32) for _ in range(200)]
    with database().transaction(tenant) as conn:
        store = map_nodes.DbMapNodes(conn)
        read = store.get_paths(keys)
        assert 2 <= store.queries <= 4  # a statement per level of strata
        paths = memory.get_paths(keys)
        assert len(paths) > len(keys)
        assert all(read.get(address) == node for address, node in paths.items())
        changes = {k: b"value" for k in keys[::7]}
        assert sparse_merkle.update(store, changes) == sparse_merkle.update(memory, changes)


def test_node_reads_take_the_hash_from_the_key_once_the_pages_are_all_visible(
    superuser, tenant, database_url
):
    """The primary key includes the hash (migration 0026): once vacuum has marked the
    sealed nodes' pages all-visible, a read of a proof's nodes touches no heap page (before
    the vacuum, about one a node: the test above)."""
    seed_skills(superuser, tenant, 0, 6000)
    tlog.seal(tenant)
    with superuser.connect().execution_options(isolation_level="AUTOCOMMIT") as su:
        su.execute(text("VACUUM log_nodes"))
    keys = sorted(merkle.inclusion_keys(4321, 6000) | merkle.consistency_keys(777, 6000))
    with database().transaction(tenant) as conn:
        before = _fetched(conn, "log_nodes")
        nodes = tree.DbNodes(conn).get_nodes(keys)
        fetched = _fetched(conn, "log_nodes") - before
    assert set(nodes) == set(keys)
    assert fetched <= 1, (fetched, len(keys))  # the visibility map's page, no heap page
