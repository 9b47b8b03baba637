"""RFC 9162 §2.1 Merkle tree over stored perfect subtrees.

Hashing: a leaf is ``SHA-256(0x00 || entry)``; an interior node is
``SHA-256(0x01 || left || right)``; the empty tree's root is ``SHA-256()``.

Storage model: only perfect subtrees are kept, addressed ``(level, index)`` = the hash of leaves
``[index * 2**level, (index + 1) * 2**level)``; level 0 holds the leaf hashes. Any range that the
RFC's recursion visits starts at a multiple of its largest power of two, so it is the right fold
of O(log n) perfect subtrees. Each operation first plans the keys it needs and asks a
``NodeReader`` for all of them in one batch, then computes.
"""

from shared.integrity.merkle.hashing import (
    EMPTY_ROOT,
    Key,
    MemoryNodes,
    MissingNode,
    NodeReader,
    append_nodes,
    leaf_hash,
    node_hash,
    node_hashes,
    range_keys,
    root,
    root_from_leaves,
)
from shared.integrity.merkle.proofs import (
    consistency_keys,
    consistency_proof,
    consistency_proofs,
    inclusion_keys,
    inclusion_proof,
    inclusion_proofs,
    pipelined_proofs,
)
from shared.integrity.merkle.root_builder import RootBuilder
from shared.integrity.merkle.verification import verify_consistency, verify_inclusion

__all__ = [
    "EMPTY_ROOT",
    "Key",
    "MemoryNodes",
    "MissingNode",
    "NodeReader",
    "RootBuilder",
    "append_nodes",
    "consistency_keys",
    "consistency_proof",
    "consistency_proofs",
    "inclusion_keys",
    "inclusion_proof",
    "inclusion_proofs",
    "leaf_hash",
    "node_hash",
    "node_hashes",
    "pipelined_proofs",
    "range_keys",
    "root",
    "root_from_leaves",
    "verify_consistency",
    "verify_inclusion",
]
