"""A seal's map update over its strata (``map_update``): the compiled walk
(native/strata_update.c) and its pure-Python twin give the same root and the same rewritten
strata, byte for byte, and the same error for a node that is not stored; both give the map
that ``sparse_merkle`` keeps node by node."""

from __future__ import annotations

import random

import plant_map_native
import pytest

from shared.integrity import sparse_merkle
from shared.storage import map_strata, map_update


def _strata(nodes: dict) -> map_strata.Strata:
    strata = map_strata.Strata()
    for prefix, by_position in map_strata.group(nodes).items():
        strata.add(prefix, map_strata.encode(by_position))
    return strata


def _digests(rng: random.Random, keys: list[bytes]) -> dict[bytes, bytes]:
    return {key: rng.randbytes(32) for key in keys}


def _both(strata: map_strata.Strata, digests: dict[bytes, bytes]) -> tuple[bytes, list]:
    compiled = map_update.update(strata, digests)
    assert compiled == map_update.update(strata, digests, pure=True)
    return compiled


def test_the_compiled_walk_is_the_one_chosen(monkeypatch):
    assert map_update.map_memory.NATIVE is plant_map_native
    calls = []
    monkeypatch.setattr(plant_map_native, "update_strata", lambda *a: calls.append(a) or (b"r", []))
    assert map_update.update(map_strata.Strata(), {bytes(32): bytes(32)}) == (b"r", [])
    assert map_update.update(map_strata.Strata(), {bytes(32): bytes(32)}, pure=True) != (b"r", [])
    assert len(calls) == 1


@pytest.mark.parametrize("seed", range(6))
def test_seal_after_seal_both_give_the_map_kept_node_by_node(seed):
    rng = random.Random(seed)
    memory = sparse_merkle.MemoryNodeStore()
    strata = map_strata.Strata()
    keys: list[bytes] = []
    for size in (1, 2, 40, 700, 3000, 300):
        fresh = [rng.randbytes(32) for _ in range(size)]
        if seed % 2:  # keys sharing long prefixes with stored ones: leaves pushed down deep
            fresh += [k[:20] + rng.randbytes(12) for k in rng.sample(keys, min(len(keys), 30))]
        changed = fresh + rng.sample(keys, min(len(keys), size // 3))  # new values too
        digests = _digests(rng, changed)
        root, rewritten = _both(strata, digests)
        memory.apply(sparse_merkle.update_hashed(memory, digests))
        assert root == sparse_merkle.root(memory)
        for prefix, data in rewritten:
            strata.put(prefix, data)
        assert dict(strata) == memory.nodes  # every node, each in its stratum
        assert [p for p, _ in rewritten] == sorted(p for p, _ in rewritten)
        keys += fresh


def test_an_update_of_nothing_is_the_stored_root_and_no_stratum():
    rng = random.Random(3)
    memory = sparse_merkle.MemoryNodeStore()
    memory.update({rng.randbytes(32): b"v" for _ in range(50)})
    assert _both(_strata(memory.nodes), {}) == (sparse_merkle.root(memory), [])
    assert _both(map_strata.Strata(), {}) == (sparse_merkle.EMPTY, [])


@pytest.mark.parametrize("depth", [1, 8, 9, 16, 17])
def test_a_node_a_parent_names_but_not_stored_is_the_same_missing_node(depth):
    rng = random.Random(depth)
    memory = sparse_merkle.MemoryNodeStore()
    memory.update({rng.randbytes(32): b"v" for _ in range(5000)})
    victim = min(a for a in memory.nodes if a[0] == depth)
    top = map_strata.locate(*victim)[0]
    if depth % 8 == 0:  # the whole stratum it tops is gone, and every one below it
        nodes = {
            a: n for a, n in memory.nodes.items() if map_strata.locate(*a)[0][: depth // 8] != top
        }
    else:
        nodes = {a: n for a, n in memory.nodes.items() if a != victim}
    strata = _strata(nodes)
    key = (victim[1] << (256 - depth)).to_bytes(32, "big")
    errors = []
    for pure in (False, True):
        with pytest.raises(sparse_merkle.MissingNode) as caught:
            map_update.update(strata, {key: bytes(32), rng.randbytes(32): bytes(32)}, pure=pure)
        errors.append(str(caught.value))
    assert errors[0] == errors[1] == f"node {victim} is not stored"


def test_the_compiled_walk_refuses_records_it_cannot_walk():
    with pytest.raises(ValueError, match="sorted by key"):
        plant_map_native.update_strata({}, bytes(64) * 2)
    with pytest.raises(ValueError, match="64 bytes"):
        plant_map_native.update_strata({}, bytes(63))
    with pytest.raises(ValueError, match="not whole records"):
        plant_map_native.update_strata({b"": b"\x01" + bytes(64)}, bytes(64))
    with pytest.raises(ValueError, match="not increasing"):
        plant_map_native.update_strata({b"": (b"\x02" + bytes(65)) * 2}, bytes(64))
