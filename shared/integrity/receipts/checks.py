"""Checking receipts offline against pinned keys: the signature first, then what it says
against what was asked, each failure its own ``ReceiptError``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.integrity import merkle, native_rows
from shared.integrity.note import Verifier
from shared.integrity.receipts.encoding import (
    AnyReceipt,
    BadPath,
    BadSignature,
    BatchEntryReceipt,
    BatchReceipt,
    IndexMismatch,
    LeafMismatch,
    Receipt,
    WrongKey,
    WrongOrigin,
    decode,
    from_json,
)

Keys = Sequence[str | Verifier]


def _verifiers(keys: Keys) -> list[Verifier]:
    """Pinned keys as ``plant verify`` takes them: C2SP vkeys (or parsed Verifiers); a bad
    vkey raises ``note.MalformedNote``, a mistake of the caller's, not the receipt's."""
    if isinstance(keys, str):
        keys = [keys]
    return [k if isinstance(k, Verifier) else Verifier.from_vkey(k) for k in keys]


def _check_signature(keys: Keys, key_id: bytes, message: bytes, signature: bytes) -> Verifier:
    candidates = [v for v in _verifiers(keys) if v.key_id == key_id]
    if not candidates:
        raise WrongKey(f"no pinned key has key id {key_id.hex()}")
    for verifier in candidates:
        if verifier.verify(message, signature):
            return verifier
    raise BadSignature(f"the signature by key {key_id.hex()} does not verify")


def verify_batch(batch: BatchReceipt, keys: Keys, origin: str) -> Verifier:
    """Check a batch's signature over its ``batch`` signed bytes and its origin; return the
    key that signed it. The audit then compares ``batch.root`` with the range's MTH."""
    verifier = _check_signature(keys, batch.key_id, batch.signed_bytes(), batch.signature)
    if batch.origin != origin:
        raise WrongOrigin(f"the receipt is for {batch.origin!r}, not {origin!r}")
    return verifier


def verify_range(
    batch: BatchReceipt, keys: Keys, origin: str, leaf_hashes: Sequence[bytes]
) -> None:
    """Check a whole batch at once (the audit holds every leaf): one signature and the MTH of
    ``leaf_hashes``, the leaves at [first, first + count), against the signed root (compiled
    where the extension is: ``native_rows.mth``)."""
    verify_batch(batch, keys, origin)
    if len(leaf_hashes) != batch.count:
        raise IndexMismatch(f"the batch covers {batch.count} entries, {len(leaf_hashes)} given")
    if native_rows.mth(leaf_hashes) != batch.root:
        raise LeafMismatch("the range's leaves do not hash to the signed root")


def verify(
    receipt: AnyReceipt | bytes | Mapping[str, Any],
    keys: Keys,
    origin: str,
    index: int,
    *,
    leaf_hash: bytes | None = None,
    entry: bytes | None = None,
) -> AnyReceipt:
    """Check one entry's receipt offline: single (``entry`` signed bytes) or batch entry
    (``batch`` signed bytes and its path). Give the entry's bytes or its leaf hash.

    The signature is checked first, then what it says against what was asked, so a genuine
    receipt replayed elsewhere is named for what differs (origin, index, leaf). Returns the
    parsed receipt; raises a ``ReceiptError`` whose ``reason`` names the failure.
    """
    if (leaf_hash is None) == (entry is None):
        raise TypeError("give exactly one of leaf_hash and entry")
    wanted_leaf = merkle.leaf_hash(entry) if entry is not None else leaf_hash
    if isinstance(receipt, bytes):
        receipt = decode(receipt)
    elif isinstance(receipt, Mapping):
        receipt = from_json(receipt)
    if not isinstance(receipt, Receipt | BatchEntryReceipt):
        raise TypeError("verify takes an entry's receipt; a batch alone goes to verify_range")
    if isinstance(receipt, Receipt):
        _check_signature(keys, receipt.key_id, receipt.signed_bytes(), receipt.signature)
    else:
        verify_batch(receipt.batch, keys, receipt.origin)
    if receipt.origin != origin:
        raise WrongOrigin(f"the receipt is for {receipt.origin!r}, not {origin!r}")
    if receipt.index != index:
        raise IndexMismatch(f"the receipt is for index {receipt.index}, not {index}")
    if receipt.leaf_hash != wanted_leaf:
        raise LeafMismatch(f"the receipt is for another entry at index {index}")
    if isinstance(receipt, BatchEntryReceipt):
        batch = receipt.batch
        if not batch.first <= index < batch.first + batch.count:
            raise IndexMismatch(f"the batch [{batch.first}, +{batch.count}) lacks index {index}")
        offset = index - batch.first
        if not merkle.verify_inclusion(
            receipt.leaf_hash, offset, batch.count, receipt.path, batch.root
        ):
            raise BadPath(f"the path of index {index} does not lead to the batch's root")
    return receipt
