"""The map's root at an earlier commit, from the stored map of the latest one (the incremental
audit's map check).

Between two commits only the keys of entities with an entry in between change, and heads are
never removed; so a subtree holding none of the keys ``changed`` since the last verified
commit is, in the stored map, what it was at every commit since. The root at any of those
commits is then the stored map with the changed keys taken out and put back with the values
they had at that commit (absent where the entity had no head yet). ``Pruned.root`` computes
it from the stored paths of the changed keys, with the rule that makes the tree's shape a
function of its keys: an empty subtree hashes to ``EMPTY``, a subtree of one key to that
key's leaf wherever it stands, any other to the interior node over its halves. Where a key
taken out leaves an unchanged subtree alone under its parent, whether that subtree is one
leaf (then hoisted) is read from its stored node (``needed``, fetched by the caller).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Mapping

from shared.integrity.sparse_merkle import DEPTH, EMPTY, INTERIOR, LEAF, Address, MissingNode

Item = tuple[int, bytes, bytes]  # key as an integer, key, value hash; sorted
_UNKNOWN = -1  # an unchanged subtree whose stored node was not read: one leaf, or more


class Pruned:
    """The stored map around the changed keys."""

    def __init__(self, nodes: Mapping[Address, bytes], changed: list[int]) -> None:
        self.nodes = nodes
        self.changed = sorted(changed)
        self.needed: set[Address] = set()  # unchanged subtrees whose kind a root needs

    def root(self, items: list[Item]) -> bytes:
        """The root with the changed keys set to ``items`` (the others absent); check
        ``needed`` after: when not empty, the root is not yet known."""
        top = self.nodes.get((0, 0))
        pointer = EMPTY if top is None else hashlib.sha256(top).digest()
        return self._at(0, 0, pointer, sorted(items), 0, len(items))[0]

    def _changed_under(self, depth: int, index: int) -> bool:
        low = index << (DEPTH - depth)
        at = bisect_left(self.changed, low)
        return at < len(self.changed) and self.changed[at] < (index + 1) << (DEPTH - depth)

    def _at(
        self, depth: int, index: int, pointer: bytes, items: list[Item], lo: int, hi: int
    ) -> tuple[bytes, int]:
        """(hash, keys: 0, 1, 2 for more, or _UNKNOWN) of the subtree at (depth, index),
        whose stored hash (its parent's pointer) is ``pointer``."""
        node = self.nodes.get((depth, index))
        if not self._changed_under(depth, index):
            if pointer == EMPTY:
                return EMPTY, 0
            if node is None:
                return pointer, _UNKNOWN
            return pointer, 1 if node[:1] == LEAF else 2
        if pointer == EMPTY:
            return _build(depth, index, items[lo:hi])
        if node is None:
            raise MissingNode(f"node {(depth, index)} is not stored")
        if node[:1] == LEAF:
            key = node[1:33]
            bits = int.from_bytes(key, "big")
            kept = items[lo:hi]
            at = bisect_left(self.changed, bits)
            if not (at < len(self.changed) and self.changed[at] == bits):  # unchanged: stays
                kept = sorted([*kept, (bits, key, node[33:65])])
            return _build(depth, index, kept)
        cut = (index << 1 | 1) << (DEPTH - 1 - depth)
        mid = bisect_left(items, cut, lo, hi, key=lambda item: item[0])
        left = self._at(depth + 1, index << 1, node[1:33], items, lo, mid)
        right = self._at(depth + 1, index << 1 | 1, node[33:65], items, mid, hi)
        for alone, other, bit in ((left, right, 0), (right, left, 1)):
            if other[1] == 0:
                if alone[1] == _UNKNOWN:
                    self.needed.add((depth + 1, index << 1 | bit))
                if alone[1] in (0, 1, _UNKNOWN):
                    return alone
        return hashlib.sha256(INTERIOR + left[0] + right[0]).digest(), 2


def _build(depth: int, index: int, items: list[Item]) -> tuple[bytes, int]:
    """(hash, keys) of a subtree made of ``items`` alone."""
    if not items:
        return EMPTY, 0
    if len(items) == 1:
        return hashlib.sha256(LEAF + items[0][1] + items[0][2]).digest(), 1
    cut = (index << 1 | 1) << (DEPTH - 1 - depth)
    mid = bisect_left(items, cut, key=lambda item: item[0])
    left = _build(depth + 1, index << 1, items[:mid])[0]
    right = _build(depth + 1, index << 1 | 1, items[mid:])[0]
    return hashlib.sha256(INTERIOR + left + right).digest(), 2
