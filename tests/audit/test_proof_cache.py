"""Proofs served to clients come from a per-process cache of stored subtree hashes; audits
never do. Tampering with a stored node after it was cached must still be found."""

from __future__ import annotations

import base64

from sqlalchemy import text

from shared import tlog
from shared.storage import tree
from tests.support.rfc9162 import verify_inclusion


def _proof(history, index: int) -> tuple[dict, str]:
    served = tlog.inclusion(history.auditor, {"index": str(index)})
    return served, tlog.latest_checkpoint(history.auditor).note


def _root(history) -> bytes:
    return tlog.latest_checkpoint(history.auditor).root


def test_cached_proofs_equal_stored_ones_and_skip_the_database(history, sent_statements):
    first, _ = _proof(history, 1)
    size = first["tree_size"]
    proof = [base64.b64decode(h) for h in first["proof"]]
    leaf = base64.b64decode(first["leaf_hash"])
    assert verify_inclusion(leaf, 1, size, proof, _root(history))
    with sent_statements() as queries:
        again, _ = _proof(history, 1)
    assert again == first
    assert not any("plant_nodes" in q for q in queries), queries


def test_a_node_tampered_after_caching_is_still_found_by_the_audit(history, attack):
    served, _ = _proof(history, 0)  # caches the nodes on leaf 0's path
    attack(
        "UPDATE log_nodes SET hash = sha256(hash) WHERE tenant_id = :t AND level = 0 AND idx = 0",
        t=history.tenant,
    )
    run = history.audit("full")
    assert run["findings"], "the audit must read the database, not the proof cache"
    # What clients get stays the proof of the signed tree, which still verifies.
    leaf = base64.b64decode(served["leaf_hash"])
    proof = [base64.b64decode(h) for h in served["proof"]]
    assert verify_inclusion(leaf, 0, served["tree_size"], proof, _root(history))


def test_the_cache_is_bounded_and_keyed_by_scope():
    cache = tree.NodeCache(capacity=10)
    cache.store("db/a", {(0, i): bytes([i]) * 32 for i in range(15)})
    found, missing = cache.lookup("db/a", [(0, i) for i in range(15)])
    assert sorted(found) == [(0, i) for i in range(5, 15)]  # the oldest five went
    assert missing == [(0, i) for i in range(5)]
    assert cache.lookup("db/b", [(0, 9)]) == ({}, [(0, 9)])


def test_stored_node_reads_match_the_table(history, superuser):
    with superuser.connect() as conn:
        rows = conn.execute(
            text("SELECT level, idx, hash FROM log_nodes WHERE tenant_id = :t"),
            {"t": history.tenant},
        ).all()
    from shared.storage.engine import database

    stored = {(r[0], r[1]): bytes(r[2]) for r in rows}
    with database().transaction(history.tenant) as conn:
        reader = tree.DbNodes(conn)
        got = reader.get_nodes([(r[0], r[1]) for r in rows] + [(40, 1)])
        assert reader.queries == 2  # a key not stored: the keyed read names what is
        present = tree.DbNodes(conn)
        assert present.get_nodes(list(reversed(stored))) == stored
        assert present.queries == 1  # all stored: the hashes in the order asked
    assert got == stored


def test_node_reads_take_each_hash_at_its_stored_length(history, database_url):
    """Nodes come back packed into one value; one rewritten to 33 bytes by someone who got
    past the table's CHECK must come back as those 33 bytes, its neighbours untouched, and
    so must two rewritten to 33 and 31 bytes among keys all stored, whose hashes together
    take as many bytes as the untouched ones (all inside a transaction that is rolled
    back)."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from shared.storage.urls import pg8000_url

    keys = [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (2, 0), (9, 9)]
    engine = create_engine(pg8000_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            tx = conn.begin()
            conn.execute(text("SELECT set_config('plant.tenant', :t, true)"), {"t": history.tenant})
            before = tree.DbNodes(conn).get_nodes(keys)
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            conn.execute(text("ALTER TABLE log_nodes DROP CONSTRAINT log_nodes_hash_check"))
            conn.execute(
                text(
                    "UPDATE log_nodes SET hash = hash || '\\x00'::bytea "
                    "WHERE tenant_id = :t AND level = 0 AND idx = 1"
                ),
                {"t": history.tenant},
            )
            after = tree.DbNodes(conn).get_nodes(keys)
            conn.execute(
                text(
                    "UPDATE log_nodes SET hash = substring(hash FROM 1 FOR 31) "
                    "WHERE tenant_id = :t AND level = 0 AND idx = 2"
                ),
                {"t": history.tenant},
            )
            stored = tree.DbNodes(conn).get_nodes(keys[:-1])
            tx.rollback()
    finally:
        engine.dispose()
    assert sorted(before) == keys[:-1] and all(len(h) == 32 for h in before.values())
    assert after[(0, 1)] == before[(0, 1)] + b"\x00"
    assert {k: h for k, h in after.items() if k != (0, 1)} == {
        k: h for k, h in before.items() if k != (0, 1)
    }
    assert stored == {**before, (0, 1): before[(0, 1)] + b"\x00", (0, 2): before[(0, 2)][:31]}


def test_packed_nodes_of_other_lengths_split_as_the_walk_reads_them():
    """Two rewritten hashes, 31 and 33 bytes, keep the value a multiple of 44 bytes (the
    fixed-size split's record): each hash must still come back at its own stored length."""

    def record(level: int, idx: int, node: bytes) -> bytes:
        return (level << 56 | idx).to_bytes(8, "big") + len(node).to_bytes(4, "big") + node

    nodes = {(0, 0): b"a" * 32, (0, 1): b"b" * 31, (0, 2): b"c" * 33, (3, 7): b"d" * 32}
    packed = b"".join(record(*key, node) for key, node in nodes.items())
    assert len(packed) % 44 == 0
    assert tree.split_nodes(packed) == nodes
    whole = {key: node for key, node in nodes.items() if len(node) == 32}
    assert tree.split_nodes(b"".join(record(*k, n) for k, n in whole.items())) == whole
