"""A 256-level sparse Merkle tree with shortcut leaves: the map behind current-version proofs.

Why this shape. Keys are 32-byte SHA-256 outputs, so a key is a path of 256 bits, most
significant bit of byte 0 first (0 = left). Conceptually every key has a place at depth 256;
a subtree holding no key hashes to ``EMPTY``, and a subtree holding exactly one key hashes to
that key's leaf wherever it stands (the leaf is hoisted as high as it is alone). So the root is
a function of the set of (key, value) pairs only, never of the order they came in, and a path
is as long as the key's longest shared prefix with another key plus one: about log2(n) + 1.3
on average (keys are hashes, hence uniform), 21 to 22 at 1,000,000 keys, and a key 96 deep
would need two SHA-256 outputs sharing 95 bits. A proof is that path's siblings: at
1,000,000 keys about 700 bytes of hashes, far below the 3 KB budget; the worst case (256
siblings, 8 KB) needs a 255-bit prefix collision. A Merkle prefix tree (AKD) would save the
~0.44 n one-child interior nodes but must hash each node's label and depth, so every byte
rule and the verifier grow; with hashed keys those nodes cost little, and this tree's rules
fit in three lines:

- leaf: ``SHA-256(0x02 || key (32) || SHA-256(value))``, 65 bytes hashed;
- interior: ``SHA-256(0x03 || left (32) || right (32))``, 65 bytes hashed;
- empty subtree: 32 zero bytes (no hash computed; no SHA-256 output is known to be zero).

The tags 0x02/0x03 keep map nodes apart from the log's RFC 9162 leaves (0x00) and nodes (0x01).

Storage model: a node lives at ``(depth, index)``, ``index`` being the first ``depth`` bits of
its keys as an integer (the root is (0, 0); the children of (d, i) are (d + 1, 2i) and
(d + 1, 2i + 1)). What is stored at an address is the node's 65-byte hash preimage: a leaf
``0x02 || key || value hash`` or an interior node ``0x03 || left hash || right hash``, so a
node's hash is SHA-256 of its stored bytes and a parent carries its children's hashes. Empty
subtrees are not stored. Reading the path of a key (the root down to its leaf, or to where
the key would be) therefore yields every sibling on it, and an update of many keys needs only
the paths of those keys: a ``NodeStore`` answers all of them in one batch, and the update
rewrites exactly the nodes on them, each once however many keys share it. Heads are never
removed, so no node ever disappears: a leaf pushed down by a newcomer sharing its prefix is
overwritten in place by the interior node above both.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

DEPTH = 256
LEAF = b"\x02"
INTERIOR = b"\x03"
EMPTY = bytes(32)

Address = tuple[int, int]  # (depth, index): the first `depth` bits of the node's keys
Item = tuple[int, bytes, bytes]  # (key as an integer, key, value hash), sorted by key


class NodeStore(Protocol):
    def get_paths(self, keys: Sequence[bytes]) -> Mapping[Address, bytes]:
        """Every stored node on the path from the root towards each key, down to and
        including the leaf where it stops (or the last interior node before an empty
        subtree), as 65-byte preimages, in one round trip."""
        ...


class MissingNode(LookupError):
    """A node that its parent's hash says exists is not stored."""


def value_hash(value: bytes) -> bytes:
    """SHA-256(value): what a leaf commits to (an absence proof may show it, never the value)."""
    return hashlib.sha256(value).digest()


def leaf_node(key: bytes, value_digest: bytes) -> bytes:
    """The leaf's stored bytes and hash preimage: 0x02 || key (32) || SHA-256(value) (32)."""
    return LEAF + key + value_digest


def node_hash(node: bytes) -> bytes:
    """SHA-256 of a node's 65 stored bytes."""
    return hashlib.sha256(node).digest()


def _bits(key: bytes) -> int:
    if len(key) != 32:
        raise ValueError("a map key is 32 bytes")
    return int.from_bytes(key, "big")


def _child(node: bytes, bit: int) -> bytes:
    return node[1 + 32 * bit : 33 + 32 * bit]


@dataclass(frozen=True)
class Proof:
    """The siblings on a key's path, deepest first (``len(siblings)`` is the depth where the
    path stops), and, when it stops at another key's leaf, that leaf's key and value hash."""

    siblings: tuple[bytes, ...]
    other_leaf: tuple[bytes, bytes] | None = None


@dataclass(frozen=True)
class Update:
    """A batch's new root and every node it (re)wrote, by address; nothing is ever deleted."""

    root: bytes
    written: dict[Address, bytes]


def _walk(nodes: Mapping[Address, bytes], key: bytes) -> Proof:
    bits = _bits(key)
    siblings: list[bytes] = []
    depth, index = 0, 0
    node = nodes.get((0, 0))
    other: tuple[bytes, bytes] | None = None
    while node is not None:
        if node[:1] == LEAF:
            if node[1:33] != key:
                other = (node[1:33], node[33:65])
            break
        bit = (bits >> (DEPTH - 1 - depth)) & 1
        siblings.append(_child(node, 1 - bit))
        child = _child(node, bit)
        depth, index = depth + 1, index << 1 | bit
        if child == EMPTY:
            break
        node = nodes.get((depth, index))
        if node is None:
            raise MissingNode(f"node {(depth, index)} is not stored")
    siblings.reverse()
    return Proof(tuple(siblings), other)


def root(store: NodeStore) -> bytes:
    """The map's root: the hash of the node at (0, 0), or ``EMPTY`` for an empty map."""
    node = store.get_paths([EMPTY]).get((0, 0))
    return EMPTY if node is None else node_hash(node)


def prove(store: NodeStore, key: bytes) -> Proof:
    """A proof of the key's value, or of its absence, from one read of its path."""
    return prove_many(store, [key])[0]


def prove_many(store: NodeStore, keys: Sequence[bytes]) -> list[Proof]:
    """Proofs for many keys of one map, from one read of all their paths."""
    nodes = store.get_paths(keys)
    return [_walk(nodes, key) for key in keys]


def update(store: NodeStore, changes: Mapping[bytes, bytes]) -> Update:
    """Set each key to its value (bytes). One read (the changed keys' paths); each node on
    those paths is rehashed once, however many changed keys share it."""
    return update_hashed(store, {key: value_hash(value) for key, value in changes.items()})


def update_hashed(store: NodeStore, digests: Mapping[bytes, bytes]) -> Update:
    """``update`` with each value given by its hash (an audit that hashed the values itself)."""
    if not digests:
        return Update(root(store), {})
    items: list[Item] = sorted((_bits(k), k, v) for k, v in digests.items())
    nodes = store.get_paths([item[1] for item in items])
    keys = [item[0] for item in items]  # bisected in C (a key= function costs a call a step)
    written: dict[Address, bytes] = {}
    sha256 = hashlib.sha256

    def build(
        depth: int, index: int, items: list[Item], lo: int, hi: int, keys: list[int] = keys
    ) -> bytes:
        """A subtree made of items[lo:hi] alone (nothing stored below it); ``keys`` are
        their integers."""
        if hi - lo == 1:
            node = LEAF + items[lo][1] + items[lo][2]
        else:
            cut = (index << 1 | 1) << (DEPTH - 1 - depth)
            mid = bisect_left(keys, cut, lo, hi)
            left = build(depth + 1, index << 1, items, lo, mid, keys) if mid > lo else EMPTY
            right = build(depth + 1, index << 1 | 1, items, mid, hi, keys) if hi > mid else EMPTY
            node = INTERIOR + left + right
        written[(depth, index)] = node
        return sha256(node).digest()

    def merge(depth: int, index: int, lo: int, hi: int, node: bytes | None) -> bytes:
        """The subtree at (depth, index) after items[lo:hi] land in it; ``node`` is its
        stored node (None when empty)."""
        if node is None:
            return build(depth, index, items, lo, hi)
        if node[:1] == LEAF:
            old_key = node[1:33]
            old_bits = int.from_bytes(old_key, "big")
            at = bisect_left(keys, old_bits, lo, hi)
            if at < hi and items[at][0] == old_bits:
                return build(depth, index, items, lo, hi)  # the old key gets a new value
            merged = [*items[lo:at], (old_bits, old_key, node[33:65]), *items[at:hi]]
            return build(depth, index, merged, 0, len(merged), [item[0] for item in merged])
        cut = (index << 1 | 1) << (DEPTH - 1 - depth)
        mid = bisect_left(keys, cut, lo, hi)
        halves = [node[1:33], node[33:65]]
        for bit, (a, b) in enumerate(((lo, mid), (mid, hi))):
            if a == b:
                continue
            address = (depth + 1, index << 1 | bit)
            if halves[bit] == EMPTY:
                halves[bit] = build(*address, items, a, b)
                continue
            child = nodes.get(address)
            if child is None:
                raise MissingNode(f"node {address} is not stored")
            halves[bit] = merge(*address, a, b, child)
        node = INTERIOR + halves[0] + halves[1]
        written[(depth, index)] = node
        return sha256(node).digest()

    new_root = merge(0, 0, 0, len(items), nodes.get((0, 0)))
    return Update(new_root, written)


class Reason(StrEnum):
    """Why a proof does not hold, one value per way it can fail."""

    MALFORMED = "malformed"  # a root, key, sibling or leaf field is not 32 bytes
    TOO_LONG = "too_long"  # more than 256 siblings
    NOT_CANONICAL = "not_canonical"  # the deepest sibling is empty: the path stops higher
    MEMBERSHIP_WITH_OTHER_LEAF = "membership_with_other_leaf"  # a value, yet another key's leaf
    KEY_PRESENT = "key_present"  # an absence proof whose leaf is the key itself
    OTHER_LEAF_OFF_PATH = "other_leaf_off_path"  # the other leaf is not on the key's path
    ROOT_MISMATCH = "root_mismatch"  # the path does not lead to the root


class ProofFailure(ValueError):
    """A map proof that does not hold; ``reason`` names the check that failed."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def check(root_hash: bytes, key: bytes, value: bytes | None, proof: Proof) -> None:
    """Hold the proof against the root: ``value`` is the key's value, or None for "absent".

    From the bottom: a membership proof starts at SHA-256(0x02 || key || SHA-256(value)); an
    absence proof at ``EMPTY`` or at the other leaf SHA-256(0x02 || other key || its value
    hash), which must share the key's first ``len(siblings)`` bits; then for each sibling,
    deepest first, at depth d = len(siblings) - position, SHA-256(0x03 || sibling || node)
    if bit d - 1 of the key is 1, else SHA-256(0x03 || node || sibling). Raises ProofFailure.
    """
    siblings = proof.siblings
    if len(root_hash) != 32 or len(key) != 32 or any(len(s) != 32 for s in siblings):
        raise ProofFailure(Reason.MALFORMED, "the root, the key and each sibling are 32 bytes")
    if len(siblings) > DEPTH:
        raise ProofFailure(Reason.TOO_LONG, f"{len(siblings)} siblings; a path has at most 256")
    if siblings and siblings[0] == EMPTY:
        raise ProofFailure(Reason.NOT_CANONICAL, "the deepest sibling is the empty subtree")
    bits = int.from_bytes(key, "big")
    depth = len(siblings)
    if value is not None:
        if proof.other_leaf is not None:
            raise ProofFailure(Reason.MEMBERSHIP_WITH_OTHER_LEAF, "a value, yet another leaf")
        digest = node_hash(LEAF + key + value_hash(value))
    elif proof.other_leaf is None:
        digest = EMPTY
    else:
        other_key, other_value = proof.other_leaf
        if len(other_key) != 32 or len(other_value) != 32:
            raise ProofFailure(Reason.MALFORMED, "the other leaf's key and value hash are 32 bytes")
        if other_key == key:
            raise ProofFailure(Reason.KEY_PRESENT, "the proof's leaf is the key itself")
        if int.from_bytes(other_key, "big") >> (DEPTH - depth) != bits >> (DEPTH - depth):
            raise ProofFailure(Reason.OTHER_LEAF_OFF_PATH, f"it differs in the first {depth} bits")
        digest = node_hash(LEAF + other_key + other_value)
    sha256 = hashlib.sha256
    for position, sibling in enumerate(siblings):
        if (bits >> (DEPTH - depth + position)) & 1:
            digest = sha256(INTERIOR + sibling + digest).digest()
        else:
            digest = sha256(INTERIOR + digest + sibling).digest()
    if digest != root_hash:
        raise ProofFailure(Reason.ROOT_MISMATCH, "the path does not lead to the root")


def verify(root_hash: bytes, key: bytes, value: bytes | None, proof: Proof) -> bool:
    """``check`` as a boolean: True only when the proof holds."""
    try:
        check(root_hash, key, value, proof)
    except ProofFailure:
        return False
    return True


class MemoryNodeStore:
    """An in-memory NodeStore (tests, offline recomputation by an audit)."""

    def __init__(self) -> None:
        self.nodes: dict[Address, bytes] = {}

    def get_paths(self, keys: Sequence[bytes]) -> Mapping[Address, bytes]:
        out: dict[Address, bytes] = {}
        nodes = self.nodes
        for key in keys:
            bits = _bits(key)
            depth, index = 0, 0
            node = nodes.get((0, 0))
            while node is not None:
                out[(depth, index)] = node
                if node[:1] == LEAF:
                    break
                bit = (bits >> (DEPTH - 1 - depth)) & 1
                if _child(node, bit) == EMPTY:
                    break
                depth, index = depth + 1, index << 1 | bit
                node = nodes.get((depth, index))
        return out

    def apply(self, change: Update) -> None:
        self.nodes.update(change.written)

    def update(self, changes: Mapping[bytes, bytes]) -> bytes:
        """``update`` then ``apply``: the new root."""
        change = update(self, changes)
        self.apply(change)
        return change.root
