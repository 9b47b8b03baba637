"""Proofs from shared/ equal the RFC's own recursion and verify with an independent verifier,
for every tree size from 1 to 2000, and fail for any flipped bit, wrong index or wrong size."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.integrity import merkle
from shared.integrity.merkle import proofs
from tests.support import rfc9162 as ref

MAX = 2000
LEAVES = [ref.leaf(f"leaf {i}".encode()) for i in range(MAX)]
TREE = merkle.MemoryNodes()
for start in range(0, MAX, 137):  # uneven chunks exercise incremental appends
    TREE.append(LEAVES[start : start + 137])


@st.composite
def size_and_index(draw):
    size = draw(st.integers(1, MAX))
    return size, draw(st.integers(0, size - 1))


@st.composite
def two_sizes(draw):
    new = draw(st.integers(1, MAX))
    return draw(st.integers(1, new)), new


def _flips(proof: list[bytes]):
    for i, item in enumerate(proof):
        for bit in (0, 7, 255):
            changed = bytearray(item)
            changed[bit // 8] ^= 1 << (bit % 8)
            yield [*proof[:i], bytes(changed), *proof[i + 1 :]]


@settings(max_examples=80, deadline=None)
@given(size_and_index())
def test_inclusion_proofs_match_the_rfc_and_verify_independently(case):
    size, index = case
    root = merkle.root(TREE, size)
    assert root == ref.mth(LEAVES[:size])
    proof = merkle.inclusion_proof(TREE, index, size)
    assert proof == ref.path(index, LEAVES[:size])
    assert ref.verify_inclusion(LEAVES[index], index, size, proof, root)
    assert merkle.verify_inclusion(LEAVES[index], index, size, proof, root)


@settings(max_examples=60, deadline=None)
@given(size_and_index())
def test_inclusion_proof_fails_for_flipped_bit_wrong_index_or_size(case):
    size, index = case
    root = merkle.root(TREE, size)
    proof = merkle.inclusion_proof(TREE, index, size)
    for bad in _flips(proof):
        assert not ref.verify_inclusion(LEAVES[index], index, size, bad, root)
        assert not merkle.verify_inclusion(LEAVES[index], index, size, bad, root)
    if size > 1:
        other = (index + 1) % size
        assert not merkle.verify_inclusion(LEAVES[index], other, size, proof, root)
        assert not ref.verify_inclusion(LEAVES[index], other, size, proof, root)
    # A proof for one size is no proof for another, even against that size's own root.
    for wrong_size in {size + 1, size * 2 + 1, size - 1} - {0, size}:
        if index < wrong_size <= MAX:
            wrong_root = merkle.root(TREE, wrong_size)
            assert not merkle.verify_inclusion(LEAVES[index], index, wrong_size, proof, wrong_root)
            assert not ref.verify_inclusion(LEAVES[index], index, wrong_size, proof, wrong_root)
    flipped_root = bytes([root[0] ^ 1]) + root[1:]
    assert not merkle.verify_inclusion(LEAVES[index], index, size, proof, flipped_root)


@settings(max_examples=80, deadline=None)
@given(two_sizes())
def test_consistency_proofs_match_the_rfc_and_verify_independently(case):
    old, new = case
    old_root, new_root = merkle.root(TREE, old), merkle.root(TREE, new)
    proof = merkle.consistency_proof(TREE, old, new)
    assert proof == (ref.proof(old, LEAVES[:new]) if old < new else [])
    assert ref.verify_consistency(old, new, old_root, new_root, proof)
    assert merkle.verify_consistency(old, new, old_root, new_root, proof)


@settings(max_examples=60, deadline=None)
@given(two_sizes())
def test_consistency_proof_fails_for_flipped_bit_or_wrong_size(case):
    old, new = case
    old_root, new_root = merkle.root(TREE, old), merkle.root(TREE, new)
    proof = merkle.consistency_proof(TREE, old, new)
    for bad in _flips(proof):
        assert not ref.verify_consistency(old, new, old_root, new_root, bad)
        assert not merkle.verify_consistency(old, new, old_root, new_root, bad)
    if old < new:
        if new < MAX:
            wrong_root = merkle.root(TREE, new + 1)
            assert not merkle.verify_consistency(old, new + 1, old_root, wrong_root, proof)
            assert not ref.verify_consistency(old, new + 1, old_root, wrong_root, proof)
        if old > 1:
            older = merkle.root(TREE, old - 1)
            assert not merkle.verify_consistency(old - 1, new, older, new_root, proof)
        flipped = bytes([new_root[0] ^ 1]) + new_root[1:]
        assert not merkle.verify_consistency(old, new, old_root, flipped, proof)


class CountingReader:
    """Answers for a 2**40-leaf tree without storing it, and counts what is asked."""

    def __init__(self) -> None:
        self.calls = 0
        self.keys = 0

    def get_nodes(self, keys):
        self.calls += 1
        self.keys += len(keys)
        return {k: ref.leaf(repr(k).encode()) for k in keys}


def test_root_and_proofs_read_log_n_nodes_in_one_batch():
    for size in (100_000, 1_000_003, 2**40 - 1):
        for operation in (
            lambda r, n=size: merkle.root(r, n),
            lambda r, n=size: merkle.inclusion_proof(r, n // 3, n),
            lambda r, n=size: merkle.consistency_proof(r, n // 2 + 1, n),
        ):
            reader = CountingReader()
            operation(reader)
            assert reader.calls == 1
            assert reader.keys <= 2 * size.bit_length()


def test_incremental_appends_give_the_same_roots_as_the_recursion():
    tree = merkle.MemoryNodes()
    for chunk in (1, 2, 3, 5, 8, 13, 21, 34, 55):
        tree.append(LEAVES[tree.size : tree.size + chunk])
        assert merkle.root(tree, tree.size) == ref.mth(LEAVES[: tree.size])


def test_verifiers_refuse_malformed_input_without_raising():
    root = merkle.root(TREE, 10)
    assert not merkle.verify_inclusion(LEAVES[0], 10, 10, [], root)
    assert not merkle.verify_inclusion(LEAVES[0], 0, 0, [], root)
    assert not merkle.verify_inclusion(b"short", 0, 1, [], root)
    assert not merkle.verify_consistency(0, 10, root, root, [])
    assert not merkle.verify_consistency(11, 10, root, root, [root])
    assert not merkle.verify_consistency(3, 10, root, root, [b"x" * 31])


class CountingTree:
    """TREE, counting its reads."""

    def __init__(self) -> None:
        self.reads = 0

    def get_nodes(self, keys):
        self.reads += 1
        return TREE.get_nodes(keys)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, MAX), st.lists(st.integers(0, MAX - 1), max_size=60), st.randoms())
def test_many_proofs_at_once_equal_the_rfcs_each_with_one_read(size, picks, rng):
    indices = [i % size for i in picks]
    olds = [rng.randint(1, size) for _ in picks]
    reader = CountingTree()
    inclusions = merkle.inclusion_proofs(reader, indices, size)
    consistencies = merkle.consistency_proofs(reader, olds, size)
    assert inclusions == [ref.path(i, LEAVES[:size]) for i in indices]
    assert consistencies == [ref.proof(old, LEAVES[:size]) for old in olds]
    expected_reads = (indices != [] and size > 1) + any(old < size for old in olds)
    assert reader.reads == expected_reads


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, MAX).flatmap(
        lambda size: st.tuples(
            st.just(size),
            st.lists(
                st.tuples(
                    st.lists(st.integers(0, size - 1), max_size=8),
                    st.lists(st.integers(1, size), max_size=8),
                ),
                max_size=5,
            ),
        )
    )
)
def test_pipelined_proofs_are_the_batched_proofs_one_read_a_batch(case):
    size, batches = case
    reads: list[int] = []

    class Counting:
        def get_nodes(self, keys):
            reads.append(len(keys))
            return TREE.get_nodes(keys)

    got = list(merkle.pipelined_proofs(Counting(), batches, size))
    assert got == [
        (
            [ref.path(i, LEAVES[:size]) for i in indices],
            [ref.proof(old, LEAVES[:size]) for old in olds],
        )
        for indices, olds in batches
    ]
    assert len(reads) == len(batches)


def test_pipelined_proofs_name_a_missing_node():
    partial = merkle.MemoryNodes()
    partial.nodes = {k: v for k, v in TREE.nodes.items() if k != (0, 5)}
    with pytest.raises(merkle.MissingNode, match=r"\(0, 5\)"):
        list(merkle.pipelined_proofs(partial, [([4], [])], 64))


@settings(max_examples=30, deadline=None)
@given(
    st.integers(600, MAX),
    st.lists(st.tuples(st.integers(0, MAX - 1), st.integers(1, MAX)), min_size=1, max_size=40),
    st.integers(1, 8),
)
def test_pipelined_proofs_read_an_upper_node_once_per_call(size, picks, per_batch):
    """A node of a narrow upper level is read by one batch and reused by the later ones:
    never read twice in one call, and the proofs are still the RFC's."""
    pairs = [(i % size, min(old, size)) for i, old in picks]
    batches = [
        ([i for i, _ in pairs[at : at + per_batch]], [o for _, o in pairs[at : at + per_batch]])
        for at in range(0, len(pairs), per_batch)
    ]
    read: list[merkle.Key] = []

    class Recording:
        def get_nodes(self, keys):
            read.extend(keys)
            return TREE.get_nodes(keys)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(proofs, "HELD_LEVEL_WIDTH", 16)  # levels of at most 16 nodes are held
        got = list(merkle.pipelined_proofs(Recording(), batches, size))
    assert got == [
        (
            [ref.path(i, LEAVES[:size]) for i in indices],
            [ref.proof(old, LEAVES[:size]) for old in olds],
        )
        for indices, olds in batches
    ]
    upper = [key for key in read if size >> key[0] < 16]
    assert len(upper) == len(set(upper))


def test_pipelined_proofs_name_a_missing_upper_node_in_every_batch_that_needs_it():
    """An upper node that is not stored is not taken as held: the first batch needing it
    fails, and so would each later one read on its own."""
    partial = merkle.MemoryNodes()
    missing = (10, 0)  # leaves [0, 1024): on the path of every leaf at or past 1024
    partial.nodes = {k: v for k, v in TREE.nodes.items() if k != missing}
    batches = [([1500], []), ([1600], [])]
    with pytest.raises(merkle.MissingNode, match=r"\(10, 0\)"):
        list(merkle.pipelined_proofs(partial, batches, MAX))
    with pytest.raises(merkle.MissingNode, match=r"\(10, 0\)"):
        list(merkle.pipelined_proofs(partial, batches[1:], MAX))


@settings(max_examples=80, deadline=None)
@given(two_sizes(), st.integers(0, MAX - 1))
def test_proofs_read_only_subtrees_inside_their_tree(sizes, index):
    """A proof's key whose subtree passes its tree's end is folded from the right edge, never
    read: the store holds a node of that key once the log has grown past it (here the whole
    tree of 2,000 leaves answers every read), and that node is another tree's."""
    old, size = sizes
    index %= size
    read: list[merkle.Key] = []

    class Recording:
        def get_nodes(self, keys):
            read.extend(keys)
            return TREE.get_nodes(keys)

    assert merkle.inclusion_proof(Recording(), index, size) == ref.path(index, LEAVES[:size])
    assert merkle.consistency_proof(Recording(), old, size) == ref.proof(old, LEAVES[:size])
    assert all((idx + 1) << level <= size for level, idx in read)
    wanted = merkle.inclusion_keys(index, size) | merkle.consistency_keys(old, size)
    assert set(read) == wanted
