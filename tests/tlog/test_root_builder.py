"""``RootBuilder``: the root of a tree extended from a stored prefix, leaf by leaf or a batch
at a time, is the RFC's own root of all the leaves, whatever the prefix and the batch sizes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.integrity import merkle
from tests.support import rfc9162 as ref

LEAVES = [ref.leaf(f"leaf {i}".encode()) for i in range(700)]


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 300), st.lists(st.integers(0, 70), max_size=12))
def test_extend_gives_the_roots_and_state_of_adding_one_by_one(start, batches):
    stored = merkle.MemoryNodes()
    stored.append(LEAVES[:start])
    one, many = merkle.RootBuilder(stored, start), merkle.RootBuilder(stored, start)
    at = start
    for count in batches:
        batch = LEAVES[at : at + count]
        at += len(batch)
        for leaf in batch:
            one.add(leaf)
        many.extend(batch)
        assert many.size == one.size == at
        assert many.root() == one.root() == ref.mth(LEAVES[:at])


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
