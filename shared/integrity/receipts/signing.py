"""Signing receipts: one entry's, or one signature over a batch's range with each entry's
path within it."""

from __future__ import annotations

import time
from collections.abc import Sequence

from shared.integrity import merkle
from shared.integrity.note import Signer
from shared.integrity.receipts.encoding import (
    SIGNATURE_SIZE,
    BatchEntryReceipt,
    BatchReceipt,
    MalformedReceipt,
    Receipt,
    _batch_message,
    _check_common,
    _check_hash,
    _check_int,
    _entry_message,
    _origin_bytes,
)


def now_ms() -> int:
    """Milliseconds since the Unix epoch, as an SCT's timestamp."""
    return time.time_ns() // 1_000_000


def sign_entry(
    signer: Signer, origin: str, index: int, leaf_hash: bytes, time_ms: int | None = None
) -> Receipt:
    """Sign one entry's receipt (the ``entry`` signed bytes) with the log's key."""
    when = now_ms() if time_ms is None else time_ms
    key_id = signer.verifier.key_id
    _origin_bytes(origin)  # the fields are checked before anything is signed
    _check_int(index, "index")
    _check_hash(leaf_hash, "leaf hash")
    _check_common(key_id, when, bytes(SIGNATURE_SIZE))
    message = _entry_message(origin, index, leaf_hash, when, key_id)
    return Receipt(origin, index, leaf_hash, when, key_id, signer.sign(message))


def sign_batch(
    signer: Signer,
    origin: str,
    first: int,
    leaf_hashes: Sequence[bytes],
    time_ms: int | None = None,
) -> tuple[BatchReceipt, list[BatchEntryReceipt]]:
    """One signature (the ``batch`` signed bytes) over the range's RFC 9162 root, and each
    entry's receipt: that signature plus the entry's inclusion path within the range."""
    if not leaf_hashes:
        raise MalformedReceipt("a batch has at least one entry")
    for leaf in leaf_hashes:
        _check_hash(leaf, "leaf hash")
    count = len(leaf_hashes)
    levels = range_levels(leaf_hashes)
    root = levels[-1][0]
    when = now_ms() if time_ms is None else time_ms
    key_id = signer.verifier.key_id
    message = _batch_message(origin, first, count, root, when, key_id)
    batch = BatchReceipt(origin, first, count, root, when, key_id, signer.sign(message))
    paths = [range_path(levels, offset) for offset in range(count)]
    entries = [
        BatchEntryReceipt(batch, first + offset, leaf, tuple(path))
        for offset, (leaf, path) in enumerate(zip(leaf_hashes, paths, strict=True))
    ]
    return batch, entries


def range_levels(leaf_hashes: Sequence[bytes]) -> list[list[bytes]]:
    """The RFC 9162 tree of a range, level by level: pairs hashed with ``merkle.node_hash``,
    an odd last node carried up unchanged (the same tree as the RFC's split at the largest
    power of two); the last level is the root alone. O(count) memory, one hash per node."""
    levels = [list(leaf_hashes)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        above = [merkle.node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
        if len(below) % 2:
            above.append(below[-1])
        levels.append(above)
    return levels


def range_path(levels: list[list[bytes]], offset: int) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(offset, range), leaf's sibling first (as
    ``merkle.inclusion_proof`` gives it): a level where the node has no sibling adds none."""
    path: list[bytes] = []
    for level in levels[:-1]:
        sibling = offset ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        offset >>= 1
    return path
