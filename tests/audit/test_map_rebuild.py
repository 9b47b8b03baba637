"""The incremental audit's map arithmetic, against the map itself: the root at an earlier
commit rebuilt from the latest stored map (``map_rebuild``) is the root that map had, for any
keys and any changes; and the audit's head encoding is the seal's, byte for byte."""

from __future__ import annotations

import hashlib
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.audit import map_feed, map_rebuild
from shared.integrity import heads_map, sparse_merkle
from shared.tlog import map_commit


def _key(n: int) -> bytes:
    return hashlib.sha256(n.to_bytes(4, "big")).digest()


def _rebuilt(store: sparse_merkle.MemoryNodeStore, changed: list[bytes], values: dict) -> bytes:
    """The root ``Pruned`` gives, its needed nodes read from ``store`` as the audit reads them
    from the database."""
    pruned = map_rebuild.Pruned(
        dict(store.get_paths(changed or [sparse_merkle.EMPTY])),
        [int.from_bytes(k, "big") for k in changed],
    )
    items = [(int.from_bytes(k, "big"), k, sparse_merkle.value_hash(v)) for k, v in values.items()]
    for _ in range(300):
        pruned.needed = set()
        root = pruned.root(items)
        if not pruned.needed:
            return root
        pruned.nodes = {**pruned.nodes, **{a: store.nodes[a] for a in pruned.needed}}
    raise AssertionError("the needed nodes never sufficed")


@settings(max_examples=150, deadline=None)
@given(
    before=st.sets(st.integers(0, 400), max_size=60),
    changes=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 3)), max_size=25),
)
def test_an_earlier_root_is_rebuilt_from_the_latest_stored_map(before, changes):
    earlier = {_key(n): b"v0" for n in before}
    store = sparse_merkle.MemoryNodeStore()
    expected = store.update(earlier) if earlier else sparse_merkle.EMPTY
    latest = {_key(n): b"v%d" % value for n, value in changes}
    store.update(latest)
    changed = sorted(latest)
    assert _rebuilt(store, changed, {k: v for k, v in earlier.items() if k in latest}) == (expected)
    assert _rebuilt(store, changed, latest) == sparse_merkle.root(store)


def test_the_root_of_one_key_taken_out_of_two_is_the_other_leaf():
    store = sparse_merkle.MemoryNodeStore()
    store.update({_key(1): b"a"})
    alone = sparse_merkle.root(store)
    store.update({_key(2): b"b"})
    assert _rebuilt(store, [_key(2)], {}) == alone
    assert _rebuilt(store, [_key(1), _key(2)], {}) == sparse_merkle.EMPTY


@given(
    status=st.sampled_from([None, "draft", "certified", "Bad", "x" * 33]),
    kind=st.sampled_from(["skill", "job_role", "", "Skill"]),
    version=st.integers(0, 3),
    certificate=st.one_of(st.none(), st.integers(0, 99)),
    leaf=st.sampled_from([bytes(32), b"\x07" * 32, b"short"]),
)
def test_the_audits_head_value_is_the_seals(status, kind, version, certificate, leaf):
    entity_id = str(uuid.UUID(int=12345678901234567890))
    head = map_commit.head_of(kind, entity_id, version, 42, leaf, status, certificate)
    expected = None if head is None else heads_map.encode_head(head)
    try:
        got = map_feed.head_value((42, kind, version, leaf, status), entity_id, certificate)
    except ValueError:
        got = "raised"
    assert got == expected
    if head is not None:
        assert map_feed.entity_key(entity_id) == head.key
