"""``tree.insert_nodes``: a seal's subtree hashes written many statements at a time are
exactly the nodes of the tree of those leaves, each at its own level and index."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from shared import tlog
from shared.integrity import merkle
from shared.storage import copyread, tree
from shared.storage.engine import database
from tests.support.seeding import seed_skills


def test_a_seal_written_in_many_statements_stores_every_node(
    superuser, tenant, database_url, monkeypatch, stored_leaves
):
    seed_skills(superuser, tenant, 0, 50)
    monkeypatch.setattr(copyread, "RANGE", 7)
    tlog.seal(tenant)
    leaves = stored_leaves(tenant)
    with superuser.connect() as conn:
        stored = {
            (int(r[0]), int(r[1])): bytes(r[2])
            for r in conn.execute(
                text("SELECT level, idx, hash FROM log_nodes WHERE tenant_id = :t"), {"t": tenant}
            )
        }
    expected = merkle.MemoryNodes()
    expected.append(leaves)
    assert stored == expected.nodes


def test_a_hash_of_another_length_is_refused(tenant, database_url):
    with database().transaction(tenant) as conn, pytest.raises(ValueError):
        tree.insert_nodes(conn, [(0, 0, b"\x00" * 32), (0, 1, b"\x00" * 31)])
