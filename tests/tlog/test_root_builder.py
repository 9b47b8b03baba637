"""``RootBuilder``: the root of a tree extended from a stored prefix, leaf by leaf or a batch
at a time, is the RFC's own root of all the leaves, whatever the prefix and the batch sizes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.integrity import map_memory, merkle
from tests.support import rfc9162 as ref

LEAVES = [ref.leaf(f"leaf {i}".encode()) for i in range(700)]


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 300),
    st.lists(st.integers(0, 70), max_size=12),
    st.booleans(),
    st.sets(st.integers(0, 8), max_size=3),
    st.sampled_from([b"", b"x" * 31, b"y" * 33, b"z" * 64]),
)
def test_extend_gives_the_roots_and_state_of_adding_one_by_one(
    start, batches, pure, altered, other
):
    """Compiled (``merkle.node_hashes`` in the extension) and pure; the stored subtrees of
    the prefix as the seal wrote them, or some rewritten to another length (an insider's:
    the root then is not the RFC's, but extending gives what adding gives)."""
    stored = merkle.MemoryNodes()
    stored.append(LEAVES[:start])
    edge = merkle.range_keys(0, start)
    for n in altered & set(range(len(edge))):
        stored.nodes[edge[n]] = other
    with pytest.MonkeyPatch.context() as monkeypatch:
        if pure:
            monkeypatch.setattr(map_memory, "NATIVE", None)
        one, many = merkle.RootBuilder(stored, start), merkle.RootBuilder(stored, start)
        at = start
        for count in batches:
            batch = LEAVES[at : at + count]
            at += len(batch)
            for leaf in batch:
                one.add(leaf)
            many.extend(batch)
            assert many.size == one.size == at
            assert many.subtrees() == one.subtrees()
            assert many.root() == one.root()
            assert altered & set(range(len(edge))) or one.root() == ref.mth(LEAVES[:at])


def test_leaves_of_another_length_are_refused():
    with pytest.raises(ValueError):
        merkle.RootBuilder(merkle.MemoryNodes(), 0).extend([LEAVES[0], b"short"])


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 300), st.lists(st.integers(0, 70), max_size=12))
def test_subtrees_from_another_builder_give_the_roots_of_the_leaves_or_are_refused(start, batches):
    """The parallel audit's ranges come back as the perfect subtrees a builder of their own
    made: taken where each starts on a multiple of its width, refused (nothing changed)
    where one would not, and never a root other than the RFC's."""
    stored = merkle.MemoryNodes()
    stored.append(LEAVES[:start])
    builder = merkle.RootBuilder(stored, start)
    at = start
    for count in batches:
        batch = LEAVES[at : at + count]
        own = merkle.RootBuilder(merkle.MemoryNodes(), 0)
        own.extend(batch)
        fits = all(
            (at + sum(1 << lv for lv, _ in own.subtrees()[:k])) % (1 << level) == 0
            for k, (level, _) in enumerate(own.subtrees())
        )
        before = (builder.size, builder.root())
        assert builder.extend_subtrees(own.subtrees()) is fits
        if not fits:
            assert (builder.size, builder.root()) == before
            builder.extend(batch)
        at += len(batch)
        assert builder.size == at
        assert builder.root() == ref.mth(LEAVES[:at])


def test_a_subtree_off_its_boundary_is_refused():
    builder = merkle.RootBuilder(merkle.MemoryNodes(), 0)
    builder.extend(LEAVES[:3])
    pair = merkle.RootBuilder(merkle.MemoryNodes(), 0)
    pair.extend(LEAVES[3:5])  # one subtree of two leaves, which would start at 3
    assert pair.subtrees()[0][0] == 1
    assert builder.extend_subtrees(pair.subtrees()) is False
    assert builder.size == 3 and builder.root() == ref.mth(LEAVES[:3])
    builder.add(LEAVES[3])
    quad = merkle.RootBuilder(merkle.MemoryNodes(), 0)
    quad.extend(LEAVES[4:9])  # four leaves and one, from 4: both on their boundaries
    assert builder.extend_subtrees(quad.subtrees()) is True
    assert builder.size == 9 and builder.root() == ref.mth(LEAVES[:9])
