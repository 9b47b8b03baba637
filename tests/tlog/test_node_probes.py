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
