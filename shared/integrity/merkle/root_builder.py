"""The root of a tree extended leaf by leaf from the stored right edge of its first leaves."""

from __future__ import annotations

from collections.abc import Sequence

from shared.integrity.merkle.hashing import (
    EMPTY_ROOT,
    NodeReader,
    node_hash,
    node_hashes,
    right_edge,
)


class RootBuilder:
    """The root of a tree extended leaf by leaf, in O(log n) memory.

    Starts from the stored right-edge subtrees of the first ``start`` leaves (one batch read),
    so an audit can rebuild a signed root from recomputed leaves without holding them.
    """

    def __init__(self, reader: NodeReader, start: int) -> None:
        self._stack = [(level, digest) for level, _, digest in right_edge(reader, start)]
        self.size = start

    def add(self, leaf: bytes) -> None:
        level, digest = 0, leaf
        while self._stack and self._stack[-1][0] == level:
            digest = node_hash(self._stack.pop()[1], digest)
            level += 1
        self._stack.append((level, digest))
        self.size += 1

    def extend(self, leaves: Sequence[bytes]) -> None:
        """``add`` of each 32-byte leaf hash in turn, a level at a time: each level's pairs
        are hashed in one call (``node_hashes``), after the pending subtree of that level on
        the left, and the odd one left over at each level waits on the stack, as ``add``
        would leave it."""
        nodes = b"".join(leaves)
        if len(nodes) != 32 * len(leaves):
            raise ValueError("leaf hashes are 32 bytes each")
        self.size += len(leaves)
        level = 0
        leftovers: list[tuple[int, bytes]] = []
        while nodes:
            first = b""  # the pending subtree's parent, when it is stored at another length
            if self._stack and self._stack[-1][0] == level:
                left = self._stack.pop()[1]
                if len(left) == 32:
                    nodes = left + nodes
                else:  # a stored subtree altered to another length: this pair hashed alone
                    first, nodes = node_hash(left, nodes[:32]), nodes[32:]
            if len(nodes) % 64:
                leftovers.append((level, nodes[-32:]))
                nodes = nodes[:-32]
            nodes = first + node_hashes(nodes)
            level += 1
        self._stack.extend(reversed(leftovers))

    def subtrees(self) -> list[tuple[int, bytes]]:
        """The perfect subtrees the leaves so far make, largest first: (level, hash)."""
        return list(self._stack)

    def extend_subtrees(self, subtrees: Sequence[tuple[int, bytes]]) -> bool:
        """The next leaves given as another builder's ``subtrees`` of them (built from no
        leaves), taken as ``extend`` of those leaves would take them. That holds only when
        each subtree starts on a multiple of its own width here; where one would not,
        nothing changes and the answer is False (then ``extend`` the leaves instead)."""
        size = self.size
        for level, _ in subtrees:
            if size % (1 << level):
                return False
            size += 1 << level
        for level, digest in subtrees:
            while self._stack and self._stack[-1][0] == level:
                digest = node_hash(self._stack.pop()[1], digest)
                level += 1
            self._stack.append((level, digest))
        self.size = size
        return True

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        result = self._stack[-1][1]
        for _, digest in reversed(self._stack[:-1]):
            result = node_hash(digest, result)
        return result
