"""The incremental audit's map arithmetic, against the map itself: the root at an earlier
commit rebuilt from the latest stored map (``map_rebuild``) is the root that map had, for any
keys and any changes (keys taken out where they had no head yet, values changed); the compiled
walk (native/map_rebuild.c) and its pure-Python twin give the same roots, ask for the same
nodes and name the same missing node, on clean and on tampered strata; ``Pruned.proves`` says
yes, both ways, on a clean map and only when every changed head is proven as the audit proves
it (a pointer on a path rewritten whose proofs still hold, from the siblings, is a no, which
the audit names by the pointer: test_map_audit); and the audit's head encoding is the seal's."""

from __future__ import annotations

import hashlib
import random
import uuid

import plant_map_native
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.audit import map_feed, map_rebuild
from shared.integrity import heads_map, map_memory, sparse_merkle
from shared.storage import map_strata
from shared.tlog import map_commit
from tests.storage.test_map_update import _strata


def _key(n: int) -> bytes:
    return hashlib.sha256(n.to_bytes(4, "big")).digest()


def _digests(values: dict[bytes, bytes]) -> dict[bytes, bytes]:
    return {key: sparse_merkle.value_hash(value) for key, value in values.items()}


def _read(nodes: dict, changed: list[bytes]) -> tuple[map_strata.Strata, map_strata.Strata]:
    """The strata on the changed keys' paths (those under a prefix of a key that exist, as
    ``DbMapNodes.get_paths`` reads them), and all of them (the table)."""
    whole = _strata(nodes)
    read = map_strata.Strata()
    for key in changed or [sparse_merkle.EMPTY]:
        for level in range(33):
            if key[:level] in whole.rows and key[:level] not in read.rows:
                read.add(key[:level], whole.rows[key[:level]])
    return read, whole


def _rebuilt(nodes: dict, changed: list[bytes], digests: dict, pure: bool) -> object:
    """The root ``Pruned`` gives (or its MissingNode's text), its needed nodes read from the
    whole strata as the audit reads them from the database, with each round's needed."""
    read, whole = _read(nodes, changed)
    pruned = map_rebuild.Pruned(read, changed, pure=pure)
    rounds = []
    for _ in range(300):
        try:
            root = pruned.root(digests)
        except sparse_merkle.MissingNode as exc:
            return str(exc), rounds
        rounds.append(pruned.needed)
        if not pruned.needed:
            return root, rounds
        for address in pruned.needed:
            prefix = map_strata.locate(*address)[0]
            if prefix in whole.rows and prefix not in read.rows:
                read.add(prefix, whole.rows[prefix])
        missing = [a for a in pruned.needed if a not in read]
        if missing:
            return f"node {min(missing)} is not stored", rounds
    raise AssertionError("the needed nodes never sufficed")


def _both(nodes: dict, changed: list[bytes], digests: dict) -> object:
    """``_rebuilt`` compiled and pure: the same root or missing node, the same rounds (or
    both refusing a subtree at depth 256 that holds two keys: ValueError)."""
    found = []
    for pure in (False, True):
        try:
            found.append(_rebuilt(nodes, changed, digests, pure=pure))
        except ValueError:
            found.append(("refused", []))
    assert found[0] == found[1]
    return found[0][0]


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
    old = _digests({k: v for k, v in earlier.items() if k in latest})  # new keys taken out
    assert _both(store.nodes, changed, old) == expected
    assert _both(store.nodes, changed, _digests(latest)) == sparse_merkle.root(store)


def test_the_root_of_one_key_taken_out_of_two_is_the_other_leaf():
    store = sparse_merkle.MemoryNodeStore()
    store.update({_key(1): b"a"})
    alone = sparse_merkle.root(store)
    store.update({_key(2): b"b"})
    assert _both(store.nodes, [_key(2)], {}) == alone
    assert _both(store.nodes, [_key(1), _key(2)], {}) == sparse_merkle.EMPTY
    assert _both({}, [_key(1)], {}) == sparse_merkle.EMPTY


def test_keys_deep_in_strata_below_are_taken_out_alike():
    """Keys sharing 20 to 30 bytes: chains of one-child nodes across strata, leaves hoisted
    up through them when their neighbours go, needed subtrees in strata not yet read."""
    rng = random.Random(7)
    base = [rng.randbytes(32) for _ in range(300)]
    deep = [k[:n] + rng.randbytes(32 - n) for k in base[:40] for n in [rng.randrange(20, 31)]]
    store = sparse_merkle.MemoryNodeStore()
    expected = store.update({k: b"a" for k in base})
    changed = sorted(set(deep) | set(rng.sample(base, 30)))
    latest = {k: b"b" for k in changed}
    store.update(latest)
    old = _digests({k: b"a" for k in changed if k in base})
    assert _both(store.nodes, changed, old) == expected
    assert _both(store.nodes, changed, _digests(latest)) == sparse_merkle.root(store)


def _tampered(nodes: dict, rng: random.Random, how: int) -> dict:
    """The nodes with one of them dropped, a byte of it flipped, its tag changed, or a leaf
    moved to another address below."""
    nodes = dict(nodes)
    victim = rng.choice(sorted(nodes))
    if how == 0:
        del nodes[victim]
    elif how == 1:
        at = rng.randrange(1, 65)
        nodes[victim] = (
            nodes[victim][:at] + bytes([nodes[victim][at] ^ 1]) + nodes[victim][at + 1 :]
        )
    elif how == 2:
        nodes[victim] = bytes([rng.choice([0, 1, 2, 3])]) + nodes[victim][1:]
    else:
        depth = victim[0] + rng.randrange(1, 9)
        nodes[(depth, rng.getrandbits(depth))] = nodes.pop(victim)
    return nodes


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 10**9), how=st.integers(0, 3), size=st.integers(1, 300))
def test_tampered_strata_give_the_same_root_or_missing_node_both_ways(seed, how, size):
    rng = random.Random(seed)
    store = sparse_merkle.MemoryNodeStore()
    keys = [rng.randbytes(32) for _ in range(size)]
    store.update({k: b"a" for k in keys})
    new = [rng.randbytes(32) for _ in range(rng.randrange(0, 8))]  # no head before
    store.update({k: b"b" for k in new})
    changed = rng.sample(keys, rng.randrange(0, min(size, 20) + 1)) + new
    changed = sorted(changed + [rng.randbytes(32) for _ in range(rng.randrange(0, 3))])
    nodes = _tampered(store.nodes, rng, how)
    for values in ({k: b"a" for k in changed if k in keys}, {k: b"b" for k in changed}):
        _both(nodes, changed, _digests(values))


@pytest.mark.parametrize("depth", [1, 8, 9, 16])
def test_a_changed_node_its_parent_names_but_not_stored_is_the_same_missing_node(depth):
    rng = random.Random(depth)
    store = sparse_merkle.MemoryNodeStore()
    store.update({rng.randbytes(32): b"v" for _ in range(3000)})
    victim = min(a for a in store.nodes if a[0] == depth and store.nodes[a][:1] == b"\x03")
    nodes = {a: n for a, n in store.nodes.items() if a != victim}
    leaves = [n[1:33] for n in store.nodes.values() if n[:1] == b"\x02"]
    below = next(k for k in leaves if int.from_bytes(k, "big") >> (256 - depth) == victim[1])
    assert _both(nodes, [below], {}) == f"node {victim} is not stored"


def test_a_subtree_left_alone_whose_node_is_not_stored_is_named_after_its_stratum_is_read():
    store = sparse_merkle.MemoryNodeStore()
    store.update({_key(n): b"v" for n in range(2)})
    (left, right) = sorted((_key(0), _key(1)))
    depth = next(d for d in range(256) if (left[d // 8] ^ right[d // 8]) >> (7 - d % 8) & 1) + 1
    gone = (depth, int.from_bytes(left, "big") >> (256 - depth))
    nodes = {a: n for a, n in store.nodes.items() if a != gone}
    assert _both(nodes, [right], {}) == f"node {gone} is not stored"


def _all_proven(nodes: dict, root: bytes, values: dict[bytes, bytes]) -> bool:
    """What the audit's naming (``map_check.incremental._proven``) finds nothing in: each
    key's proof from the stored paths holds against ``root`` and ends at its own stored leaf."""
    store = sparse_merkle.MemoryNodeStore()
    store.nodes = dict(nodes)
    try:
        proofs = sparse_merkle.prove_many(store, sorted(values))
    except sparse_merkle.MissingNode:
        return False
    for key, proof in zip(sorted(values), proofs, strict=True):
        depth = len(proof.siblings)
        leaf = nodes.get((depth, int.from_bytes(key, "big") >> (256 - depth)))
        if not sparse_merkle.verify(root, key, values[key], proof):
            return False
        if leaf != sparse_merkle.leaf_node(key, sparse_merkle.value_hash(values[key])):
            return False
    return True


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 10**9),
    how=st.integers(-1, 3),
    size=st.integers(1, 300),
    wrong=st.booleans(),
)
def test_proves_says_yes_both_ways_only_when_every_head_is_proven(seed, how, size, wrong):
    rng = random.Random(seed)
    store = sparse_merkle.MemoryNodeStore()
    keys = [rng.randbytes(32) for _ in range(size)]
    root = store.update({k: b"a" for k in keys})
    values = {k: b"a" for k in rng.sample(keys, rng.randrange(0, min(size, 20) + 1))}
    if wrong and values:  # a head the map does not hold: another value, or a key not in it
        values[rng.choice([rng.randbytes(32), *values])] = b"b"
    nodes = _tampered(store.nodes, rng, how) if how >= 0 else store.nodes
    read, _ = _read(nodes, sorted(values))
    answers = [
        map_rebuild.Pruned(read, sorted(values), pure=pure).proves(root, _digests(values))
        for pure in (False, True)
    ]
    assert answers[0] == answers[1]
    if answers[0]:  # yes: the audit's naming would find nothing (no is checked by naming)
        assert _all_proven(nodes, root, values)
    if how < 0 and not wrong:
        assert answers[0]
    if not _all_proven(nodes, root, values):
        assert not answers[0]


def test_the_compiled_walks_are_the_ones_chosen(monkeypatch):
    assert map_memory.NATIVE is plant_map_native
    calls = []
    monkeypatch.setattr(plant_map_native, "pruned_root", lambda *a: calls.append(a) or (b"r", []))
    monkeypatch.setattr(plant_map_native, "proven", lambda *a: calls.append(a) or True)
    pruned = map_rebuild.Pruned(map_strata.Strata(), [_key(1)])
    assert pruned.root({}) == b"r" and pruned.proves(bytes(32), {_key(1): bytes(32)})
    pure = map_rebuild.Pruned(map_strata.Strata(), [_key(1)], pure=True)
    assert pure.root({}) == sparse_merkle.EMPTY and not pure.proves(bytes(32), {_key(1): b""})
    assert len(calls) == 2


def test_the_compiled_walks_refuse_records_they_cannot_walk():
    with pytest.raises(ValueError, match="sorted by key"):
        plant_map_native.pruned_root({}, bytes(32), bytes(64) * 2)
    with pytest.raises(ValueError, match="records are 32 bytes"):
        plant_map_native.pruned_root({}, bytes(31), b"")
    with pytest.raises(ValueError, match="records are 64 bytes"):
        plant_map_native.proven({}, bytes(32), bytes(63))
    with pytest.raises(ValueError, match="not whole records"):
        plant_map_native.proven({b"": b"\x01" + bytes(64)}, bytes(32), bytes(64))


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
