"""Signed write receipts: the log's promise, signed with its key, that an entry is at an index.

In the spirit of Certificate Transparency's SCT (RFC 6962 §3.2, RFC 9162 §4.8) and Rekor's
signed entry timestamp: fixed-width big-endian fields after a type byte that keeps the two
kinds of signed statement apart, the log's key id and a time in milliseconds since the epoch.
Unlike an SCT the receipt also names the origin, the index and the leaf hash, so an insider
holding the database but not the key can neither append nor rewrite an entry unnoticed.

Signed bytes (``CONTEXT`` is ``plant-receipt/v1`` and a newline, 17 bytes; integers unsigned
big-endian)::

    entry: CONTEXT || 0x00 || key id (4) || time (8) || len(origin) (2) || origin
                   || index (8) || leaf hash (32)
    batch: CONTEXT || 0x01 || key id (4) || time (8) || len(origin) (2) || origin
                   || first (8) || count (8) || MTH(leaf hashes [first, first + count)) (32)

The byte after the context line is a control byte, so no signed message is a C2SP note text
(a checkpoint, a ``cosignature/v1`` message) and none starts ``DSSEv1 `` (a DSSE PAE).
Encodings for storage are ``0x01`` (the format version) followed by the signed bytes without
``CONTEXT``, then the 64-byte Ed25519 signature; a batch entry's receipt appends its index,
its leaf hash and its inclusion path within the range. ``docs/formats.md`` spells every byte.
"""

from shared.integrity.receipts.checks import Keys, verify, verify_batch, verify_range
from shared.integrity.receipts.encoding import (
    CONTEXT,
    FORMAT,
    MAX_PATH,
    SIGNATURE_SIZE,
    TYPE_BATCH,
    TYPE_ENTRY,
    VERSION,
    AnyReceipt,
    BadPath,
    BadSignature,
    BatchEntryReceipt,
    BatchReceipt,
    IndexMismatch,
    LeafMismatch,
    MalformedReceipt,
    Receipt,
    ReceiptError,
    UnsupportedVersion,
    WrongKey,
    WrongOrigin,
    decode,
    decode_batch,
    from_json,
)
from shared.integrity.receipts.signing import (
    now_ms,
    range_levels,
    range_path,
    sign_batch,
    sign_entry,
)

__all__ = [
    "CONTEXT",
    "FORMAT",
    "MAX_PATH",
    "SIGNATURE_SIZE",
    "TYPE_BATCH",
    "TYPE_ENTRY",
    "VERSION",
    "AnyReceipt",
    "BadPath",
    "BadSignature",
    "BatchEntryReceipt",
    "BatchReceipt",
    "IndexMismatch",
    "Keys",
    "LeafMismatch",
    "MalformedReceipt",
    "Receipt",
    "ReceiptError",
    "UnsupportedVersion",
    "WrongKey",
    "WrongOrigin",
    "decode",
    "decode_batch",
    "from_json",
    "now_ms",
    "range_levels",
    "range_path",
    "sign_batch",
    "sign_entry",
    "verify",
    "verify_batch",
    "verify_range",
]
