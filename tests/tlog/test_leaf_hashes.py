"""``tree.leaf_hashes``: the stored leaf hashes of a range in index order, read a range of
statements at a time, and a gap in the entries named, never skipped."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from shared.storage import copyread, tree
from shared.storage.engine import database
from tests.support.seeding import seed_skills


def test_leaf_hashes_span_statements_in_index_order(
    superuser, tenant, database_url, monkeypatch, stored_leaves
):
    seed_skills(superuser, tenant, 0, 50)
    monkeypatch.setattr(copyread, "RANGE", 7)  # many statements, the last one short
    with database().transaction(tenant) as conn:
        assert tree.leaf_hashes(conn, 0, 50) == stored_leaves(tenant)
        assert tree.leaf_hashes(conn, 13, 29) == stored_leaves(tenant)[13:29]


def test_a_missing_entry_is_a_log_gap(superuser, tenant, database_url):
    seed_skills(superuser, tenant, 0, 20)
    with superuser.begin() as conn:
        conn.execute(text("SET session_replication_role = replica"))  # past the trigger
        conn.execute(
            text("DELETE FROM log_entries WHERE tenant_id = :t AND idx = 11"), {"t": tenant}
        )
    with database().transaction(tenant) as conn, pytest.raises(tree.LogGap) as gap:
        tree.leaf_hashes(conn, 0, 20)
    assert gap.value.missing == [11]
