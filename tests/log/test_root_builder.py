"""``RootBuilder``: the root of a tree extended from a stored prefix, leaf by leaf or a batch
at a time, is the RFC's own root of all the leaves, whatever the prefix and the batch sizes."""

from __future__ import annotations

import rfc9162 as ref
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.integrity import merkle

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
