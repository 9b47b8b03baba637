"""The map's root at an earlier commit, from the stored map of the latest one (the incremental
audit's map check), and the changed heads proven by that stored map.

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

Why compiled: ~100,000 nodes a root for 10,000 keys into 1,000,000, one interpreter call and
one hash call a node here. ``plant_map_native.pruned_root`` and ``proven`` (native/
map_rebuild.c) walk the same strata rows; the methods below are their twins, chosen by
``map_memory.NATIVE`` (tests/audit/test_map_rebuild.py holds the two to the same roots,
needed nodes, missing nodes and answers).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Mapping

from shared.integrity import map_memory
from shared.integrity.sparse_merkle import DEPTH, EMPTY, INTERIOR, LEAF, Address, MissingNode
from shared.storage import map_strata

Item = tuple[int, bytes, bytes]  # key as an integer, key, value hash; sorted
_UNKNOWN = -1  # an unchanged subtree whose stored node was not read: one leaf, or more


class Pruned:
    """The stored map (its strata read) around the changed keys."""

    def __init__(self, nodes: map_strata.Strata, changed: list[bytes], pure: bool = False) -> None:
        self.nodes = nodes
        self.keys = sorted(changed)
        self.pure = pure or map_memory.NATIVE is None
        self.changed = [int.from_bytes(key, "big") for key in self.keys] if self.pure else []
        self.needed: set[Address] = set()  # unchanged subtrees whose kind a root needs

    def root(self, digests: Mapping[bytes, bytes]) -> bytes:
        """The root with the changed keys set to ``digests`` (key -> value hash; the others
        absent); check ``needed`` after: when not empty, the root is not yet known. Raises
        ``MissingNode`` where a changed subtree's parent names a node not stored."""
        if not self.pure:
            return self._compiled(digests)
        self.needed = set()
        items = sorted((int.from_bytes(key, "big"), key, value) for key, value in digests.items())
        top = self.nodes.get((0, 0))
        pointer = EMPTY if top is None else hashlib.sha256(top).digest()
        return self._at(0, 0, pointer, items, 0, len(items))[0]

    def _compiled(self, digests: Mapping[bytes, bytes]) -> bytes:
        records = b"".join(key + digests[key] for key in sorted(digests))
        assert map_memory.NATIVE is not None
        try:
            root, needed = map_memory.NATIVE.pruned_root(
                self.nodes.rows, b"".join(self.keys), records
            )
        except LookupError as exc:  # (depth, a key below): the address as the twin names it
            raise MissingNode(f"node {_address(*exc.args)} is not stored") from None
        self.needed = {_address(depth, key) for depth, key in needed}
        return bytes(root)

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

    def proves(self, root: bytes, digests: Mapping[bytes, bytes]) -> bool:
        """Whether the stored paths prove every key of ``digests`` (key -> value hash)
        against ``root`` with its own stored leaf, checked once a node: each node on them
        stored, each pointer the hash of the node it names, each path ending at the key's
        leaf, whose sibling is not empty. Yes means the audit's proofs hold; no may also
        come of a pointer on a path rewritten where the proofs (which read the siblings)
        still hold: the caller then names what is wrong, if anything."""
        if not self.pure:
            assert map_memory.NATIVE is not None
            records = b"".join(key + digests[key] for key in sorted(digests))
            return bool(map_memory.NATIVE.proven(self.nodes.rows, root, records))
        if not digests:
            return True
        top = self.nodes.get((0, 0))
        if top is None or len(root) != 32:
            return False
        return self._proves(0, 0, top, sorted(digests.items())) == root

    def _proves(
        self, depth: int, index: int, node: bytes, items: list[tuple[bytes, bytes]]
    ) -> bytes | None:
        """The hash of ``node`` at (depth, index) when it proves ``items``, else None."""
        if node[:1] == LEAF:
            proven = len(items) == 1 and node[1:] == items[0][0] + items[0][1]
            return hashlib.sha256(node).digest() if proven else None
        if depth >= DEPTH:
            return None
        cut = ((index << 1 | 1) << (DEPTH - 1 - depth)).to_bytes(32, "big")
        mid = bisect_left(items, cut, key=lambda item: item[0])
        for bit, part in enumerate((items[:mid], items[mid:])):
            if not part:
                continue
            half, other = node[1 + 32 * bit : 33 + 32 * bit], node[33 - 32 * bit : 65 - 32 * bit]
            child = self.nodes.get((depth + 1, index << 1 | bit))
            if half == EMPTY or child is None or (child[:1] == LEAF and other == EMPTY):
                return None
            if self._proves(depth + 1, index << 1 | bit, child, part) != half:
                return None
        return hashlib.sha256(INTERIOR + node[1:]).digest()


def _address(depth: int, key: bytes) -> Address:
    """The address at ``depth`` on ``key``'s path."""
    return depth, int.from_bytes(key, "big") >> (DEPTH - depth)


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
