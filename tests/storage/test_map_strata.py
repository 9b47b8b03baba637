"""The map's strata (``map_strata``): every node of a map lands in exactly one stratum at one
position and comes back byte for byte; rows that are not whole records in order are refused;
a map kept in strata answers paths, proofs and updates exactly as the map kept by node."""

from __future__ import annotations

import random

import pytest

from shared.integrity import sparse_merkle
from shared.storage import map_strata


def _map(n: int, seed: int = 7) -> sparse_merkle.MemoryNodeStore:
    rng = random.Random(seed)
    store = sparse_merkle.MemoryNodeStore()
    store.update({rng.randbytes(32): rng.randbytes(20) for _ in range(n)})
    return store


def _as_strata(nodes: dict) -> map_strata.Strata:
    strata = map_strata.Strata()
    for prefix, by_position in map_strata.group(nodes).items():
        strata.add(prefix, map_strata.encode(by_position))
    return strata


def test_addresses_and_positions_round_trip_across_stratum_edges():
    for depth in (0, 1, 7, 8, 9, 15, 16, 23, 24, 255, 256):
        for index in {0, (1 << depth) - 1, (1 << depth) // 3}:
            prefix, position = map_strata.locate(depth, index)
            assert len(prefix) == depth // 8 and 1 <= position < 256
            assert map_strata.address(prefix, position) == (depth, index)
    # the heap numbering: the top is 1, the children of p are 2p and 2p + 1
    assert map_strata.locate(8, 5) == (b"\x05", 1)
    assert map_strata.locate(10, 0b1011_0110_11) == (b"\xb6", 0b111)
    assert map_strata.locate(15, (0xAB << 7) | 0x7F) == (b"\xab", 0xFF)


@pytest.mark.parametrize("n", [0, 1, 2, 300, 3000])
def test_a_map_grouped_into_strata_encodes_and_decodes_to_the_same_nodes(n):
    nodes = _map(n).nodes
    strata = _as_strata(nodes)
    assert dict(strata) == nodes and len(strata) == len(nodes)
    for prefix, data in strata.rows.items():
        assert len(data) % map_strata.RECORD == 0 and data[0] >= 1
        decoded = map_strata.decode(data)
        assert map_strata.encode(decoded) == data
        assert list(decoded) == sorted(decoded)  # in increasing position
        assert all(map_strata.locate(*map_strata.address(prefix, p))[0] == prefix for p in decoded)


def test_a_sparse_stratum_is_its_few_nodes_and_a_full_one_is_255():
    nodes = _map(3000).nodes
    strata = _as_strata(nodes)
    assert len(strata.rows[b""]) == 255 * map_strata.RECORD  # 3,000 keys fill the top 8 levels
    deepest = max(strata.rows, key=len)
    assert len(strata.rows[deepest]) < 4 * map_strata.RECORD


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes(66),  # position 0 is no address
        b"\x01" + bytes(64),  # not whole records
        b"\x02" + bytes(65) + b"\x01" + bytes(65),  # out of order
        b"\x03" + bytes(65) + b"\x03" + bytes(65),  # twice the same position
    ],
)
def test_a_row_that_is_not_whole_records_in_order_is_malformed(data):
    with pytest.raises(map_strata.MalformedStratum):
        map_strata.decode(data)
    with pytest.raises(sparse_merkle.MissingNode):  # read as a node not stored
        map_strata.Strata().add(b"", data)


def test_encode_refuses_what_no_stratum_holds():
    with pytest.raises(ValueError):
        map_strata.encode({0: bytes(65)})
    with pytest.raises(ValueError):
        map_strata.encode({1: bytes(64)})


class _StrataStore:
    """A NodeStore that keeps its map in strata, as the database does."""

    def __init__(self, nodes: dict) -> None:
        self.strata = _as_strata(nodes)

    def get_paths(self, keys):
        return self.strata


def test_paths_proofs_and_updates_read_from_strata_equal_the_map_kept_by_node():
    memory = _map(2000, seed=3)
    store = _StrataStore(memory.nodes)
    rng = random.Random(11)
    present = [n[1:33] for n in memory.nodes.values() if n[:1] == sparse_merkle.LEAF][:50]
    absent = [rng.randbytes(32) for _ in range(50)]
    assert sparse_merkle.root(store) == sparse_merkle.root(memory)
    assert sparse_merkle.prove_many(store, present + absent) == sparse_merkle.prove_many(
        memory, present + absent
    )
    changes = {k: b"new" for k in present[::3] + absent[::5]}
    from_strata = sparse_merkle.update(store, changes)
    assert from_strata == sparse_merkle.update(memory, changes)
    # the update's nodes written into the strata they fall in give the map updated by node
    merged = dict(store.strata)
    merged.update(from_strata.written)
    memory.apply(from_strata)
    assert _as_strata(merged).rows == _as_strata(memory.nodes).rows


def test_a_stratum_merged_with_new_nodes_is_the_stratum_encoded_with_them():
    nodes = _map(3000, seed=5).nodes
    strata = _as_strata(nodes)
    prefix = max(strata.rows, key=lambda p: (len(p), len(strata.rows[p])))
    old = map_strata.decode(strata.rows[prefix])
    replaced = {p: bytes([3]) + bytes(64) for p in list(old)[::2]}  # in place: spliced
    assert strata.merged(prefix, replaced) == map_strata.encode({**old, **replaced})
    added = {**replaced, 255 if 255 not in old else min(set(range(1, 256)) - set(old)): bytes(65)}
    assert strata.merged(prefix, added) == map_strata.encode({**old, **added})
    with pytest.raises(ValueError):
        strata.merged(prefix, {next(iter(old)): bytes(64)})
