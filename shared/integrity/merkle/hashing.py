"""Tree hashing over stored perfect subtrees: the leaf and node hashes, the subtrees a range
folds from, a tree's root, the nodes an append completes, and an in-memory store of them."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Protocol

from shared.integrity import map_memory

Key = tuple[int, int]
EMPTY_ROOT = hashlib.sha256(b"").digest()


class NodeReader(Protocol):
    def get_nodes(self, keys: Sequence[Key]) -> Mapping[Key, bytes]:
        """Return the stored hash of every key asked for (one round trip)."""
        ...


class MissingNode(LookupError):
    """A subtree hash that the tree of that size must have is not stored."""


def leaf_hash(entry: bytes) -> bytes:
    """SHA-256(0x00 || entry)."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def node_hashes(pairs: bytes) -> bytes:
    """``node_hash`` of each 64-byte (left, right) pair of 32-byte hashes, joined: a level of
    a tree hashed at once, by the extension's own SHA-256 where it is built (one interpreter
    call a level, not a node: ``map_memory.NATIVE``), else here, its twin."""
    if len(pairs) % 64:
        raise ValueError("pairs of 32-byte hashes are 64 bytes each")
    native = map_memory.NATIVE
    if native is not None:
        hashed: bytes = native.node_hashes(pairs)
        return hashed
    sha256 = hashlib.sha256
    return b"".join(
        sha256(b"\x01" + pairs[at : at + 64]).digest() for at in range(0, len(pairs), 64)
    )


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_keys(start: int, end: int) -> list[Key]:
    """The perfect subtrees whose right fold is MTH(D[start:end]), left to right."""
    remaining = end - start
    if remaining > 0 and not remaining & (remaining - 1) and not start % remaining:
        level = remaining.bit_length() - 1  # one perfect subtree: most ranges of a proof
        return [(level, start >> level)]
    keys: list[Key] = []
    pos = start
    while remaining > 0:
        level = remaining.bit_length() - 1
        size = 1 << level
        if pos % size:
            raise ValueError(f"range [{start}, {end}) is not aligned for a Merkle subtree")
        keys.append((level, pos >> level))
        pos += size
        remaining -= size
    return keys


def _fold(keys: Sequence[Key], nodes: Mapping[Key, bytes]) -> bytes:
    try:
        result = nodes[keys[-1]]
        for key in reversed(keys[:-1]):
            result = node_hash(nodes[key], result)
    except KeyError as exc:
        raise MissingNode(f"subtree {exc.args[0]} is not stored") from exc
    return result


def root(reader: NodeReader, size: int) -> bytes:
    """MTH(D[0:size])."""
    if size == 0:
        return EMPTY_ROOT
    keys = range_keys(0, size)
    return _fold(keys, reader.get_nodes(keys))


def right_edge(reader: NodeReader, size: int) -> list[tuple[int, int, bytes]]:
    """The stored perfect subtrees whose right fold is the root of the first ``size`` leaves,
    largest first, as ``(level, index, hash)``, from one batch read: where appending leaves
    to that tree starts (``append_nodes``, ``RootBuilder``)."""
    edge = range_keys(0, size)
    stored = reader.get_nodes(edge) if edge else {}
    try:
        return [(level, index, stored[(level, index)]) for level, index in edge]
    except KeyError as exc:
        raise MissingNode(f"subtree {exc.args[0]} is not stored") from exc


def append_nodes(
    reader: NodeReader, old_size: int, new_leaf_hashes: Sequence[bytes]
) -> list[tuple[int, int, bytes]]:
    """Every perfect subtree completed by appending leaves to a tree of ``old_size``.

    Reads only the old tree's right-edge subtrees (one batch); returns the new leaves
    (level 0) and each interior node they complete, as ``(level, index, hash)``.
    """
    stack = right_edge(reader, old_size)
    out: list[tuple[int, int, bytes]] = []
    for offset, leaf in enumerate(new_leaf_hashes):
        node = (0, old_size + offset, leaf)
        out.append(node)
        while stack and stack[-1][0] == node[0]:
            left = stack.pop()
            node = (node[0] + 1, node[1] >> 1, node_hash(left[2], node[2]))
            out.append(node)
        stack.append(node)
    return out


def root_from_leaves(leaves: Sequence[bytes]) -> bytes:
    """MTH by the RFC's recursion (reference; for small inputs and tests)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(root_from_leaves(leaves[:k]), root_from_leaves(leaves[k:]))


class MemoryNodes:
    """An in-memory NodeReader (offline verification, tests)."""

    def __init__(self) -> None:
        self.nodes: dict[Key, bytes] = {}
        self.size = 0

    def get_nodes(self, keys: Sequence[Key]) -> Mapping[Key, bytes]:
        return {k: self.nodes[k] for k in keys if k in self.nodes}

    def append(self, leaf_hashes: Sequence[bytes]) -> None:
        for level, index, digest in append_nodes(self, self.size, leaf_hashes):
            self.nodes[(level, index)] = digest
        self.size += len(leaf_hashes)
