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

from __future__ import annotations

import base64
import binascii
import functools
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.integrity import merkle
from shared.integrity.note import Signer, Verifier

CONTEXT = b"plant-receipt/v1\n"
FORMAT = "plant-receipt/v1"
VERSION = 0x01
TYPE_ENTRY = 0x00
TYPE_BATCH = 0x01
SIGNATURE_SIZE = 64
MAX_INT = (1 << 63) - 1  # a PostgreSQL bigint holds every index, count and time
MAX_ORIGIN = 0xFFFF
MAX_PATH = 63

_SIGNED_HEAD = struct.Struct(">B4sQH")  # type, key id, time, len(origin)
_HEAD = struct.Struct(">BB4sQH")  # version, then the same
_ENTRY_TAIL = struct.Struct(">Q32s")  # index, leaf hash
_BATCH_TAIL = struct.Struct(">QQ32s")  # first, count, root
_PATH_HEAD = struct.Struct(">Q32sB")  # index, leaf hash, path length


class ReceiptError(ValueError):
    """A receipt does not prove what it was asked to prove; ``reason`` names why."""

    reason = "invalid"


class MalformedReceipt(ReceiptError):
    """The bytes or JSON are not a well-formed receipt (length, field, encoding)."""

    reason = "malformed_encoding"


class UnsupportedVersion(MalformedReceipt):
    """The receipt's format version or type is not one this code knows."""

    reason = "unsupported_version"


class WrongKey(ReceiptError):
    """The receipt names a key id that none of the pinned keys has."""

    reason = "wrong_key"


class WrongOrigin(ReceiptError):
    """The receipt is for another log (another tenant or deployment)."""

    reason = "wrong_origin"


class IndexMismatch(ReceiptError):
    """The receipt is for another index (or its batch does not cover the index)."""

    reason = "index_mismatch"


class LeafMismatch(ReceiptError):
    """The receipt is for other entry bytes than the ones being checked."""

    reason = "leaf_mismatch"


class BadPath(ReceiptError):
    """The batch entry's inclusion path does not lead from its leaf to the signed range root."""

    reason = "bad_path"


class BadSignature(ReceiptError):
    """A pinned key has the receipt's key id but its signature over the signed bytes fails."""

    reason = "bad_signature"


def now_ms() -> int:
    """Milliseconds since the Unix epoch, as an SCT's timestamp."""
    return time.time_ns() // 1_000_000


def _check_int(value: object, what: str, low: int = 0) -> int:
    if type(value) is not int or not low <= value <= MAX_INT:
        raise MalformedReceipt(f"the {what} must be an integer in [{low}, 2**63)")
    return value


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != 32:
        raise MalformedReceipt(f"the {what} must be 32 bytes")
    return value


def _origin_bytes(origin: object) -> bytes:
    if not isinstance(origin, str) or not origin:
        raise MalformedReceipt("the origin must be a non-empty string")
    if len(origin) <= _CACHED_ORIGIN:
        return _checked_origin(origin)
    return _check_origin(origin)


_CACHED_ORIGIN = 256  # characters: a tenant's origin is checked once, a hostile long one each time


def _check_origin(origin: str) -> bytes:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in origin):
        raise MalformedReceipt("the origin must not contain control characters")
    raw = origin.encode()
    if len(raw) > MAX_ORIGIN:
        raise MalformedReceipt("the origin is longer than 65535 bytes")
    return raw


# A tenant signs and reads many receipts under one origin: each origin is checked once.
_checked_origin = functools.lru_cache(maxsize=1024)(_check_origin)


def _check_common(key_id: object, time_ms: object, signature: object) -> None:
    if not isinstance(key_id, bytes) or len(key_id) != 4:
        raise MalformedReceipt("the key id must be 4 bytes")
    _check_int(time_ms, "time")
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
        raise MalformedReceipt("the signature must be 64 bytes")


@dataclass(frozen=True)
class Receipt:
    """One entry's receipt: the log's key says ``leaf_hash`` is at ``index`` of ``origin``."""

    origin: str
    index: int
    leaf_hash: bytes
    time_ms: int
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _origin_bytes(self.origin)
        _check_int(self.index, "index")
        _check_hash(self.leaf_hash, "leaf hash")
        _check_common(self.key_id, self.time_ms, self.signature)

    def signed_bytes(self) -> bytes:
        """CONTEXT || 0x00 || key id || time || len(origin) || origin || index || leaf hash."""
        return _entry_message(self.origin, self.index, self.leaf_hash, self.time_ms, self.key_id)

    def encode(self) -> bytes:
        """0x01 || the signed bytes without CONTEXT || signature (stored beside the entry)."""
        return bytes([VERSION]) + self.signed_bytes()[len(CONTEXT) :] + self.signature

    def to_json(self) -> dict[str, Any]:
        """The receipt for a JSON response: hashes and signature base64, key id hex."""
        return {
            "format": FORMAT,
            "type": "entry",
            "origin": self.origin,
            "index": self.index,
            "leaf_hash": _b64(self.leaf_hash),
            "time": self.time_ms,
            "key_id": self.key_id.hex(),
            "signature": _b64(self.signature),
        }


@dataclass(frozen=True)
class BatchReceipt:
    """One signature over the range [first, first + count) of a log: its MTH ``root``."""

    origin: str
    first: int
    count: int
    root: bytes
    time_ms: int
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _origin_bytes(self.origin)
        _check_int(self.first, "first index")
        _check_int(self.count, "count", low=1)
        if self.first + self.count - 1 > MAX_INT:
            raise MalformedReceipt("the batch ends past index 2**63 - 1")
        _check_hash(self.root, "range root")
        _check_common(self.key_id, self.time_ms, self.signature)

    def signed_bytes(self) -> bytes:
        """CONTEXT || 0x01 || key id || time || len(origin) || origin || first || count ||
        root."""
        return _batch_message(
            self.origin, self.first, self.count, self.root, self.time_ms, self.key_id
        )

    def encode(self) -> bytes:
        """0x01 || the signed bytes without CONTEXT || signature (one per batch)."""
        return bytes([VERSION]) + self.signed_bytes()[len(CONTEXT) :] + self.signature

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "type": "batch",
            "origin": self.origin,
            "first": self.first,
            "count": self.count,
            "root": _b64(self.root),
            "time": self.time_ms,
            "key_id": self.key_id.hex(),
            "signature": _b64(self.signature),
        }


@dataclass(frozen=True)
class BatchEntryReceipt:
    """One entry's receipt out of a batch: the batch's signature plus the entry's path."""

    batch: BatchReceipt
    index: int
    leaf_hash: bytes
    path: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _check_int(self.index, "index")
        _check_hash(self.leaf_hash, "leaf hash")
        if not isinstance(self.path, tuple) or len(self.path) > MAX_PATH:
            raise MalformedReceipt("the path must be a tuple of at most 63 hashes")
        for node in self.path:
            _check_hash(node, "path hash")

    @property
    def origin(self) -> str:
        return self.batch.origin

    @property
    def time_ms(self) -> int:
        return self.batch.time_ms

    @property
    def key_id(self) -> bytes:
        return self.batch.key_id

    def encode(self) -> bytes:
        """The batch's encoding || index || leaf hash || len(path) (1) || path hashes."""
        tail = _PATH_HEAD.pack(self.index, self.leaf_hash, len(self.path))
        return self.batch.encode() + tail + b"".join(self.path)

    def to_json(self) -> dict[str, Any]:
        out = self.batch.to_json()
        out.update(
            type="batch_entry",
            index=self.index,
            leaf_hash=_b64(self.leaf_hash),
            path=[_b64(node) for node in self.path],
        )
        return out


AnyReceipt = Receipt | BatchEntryReceipt


def _head(kind: int, key_id: bytes, time_ms: int, origin: str) -> bytes:
    raw = _origin_bytes(origin)
    return CONTEXT + _SIGNED_HEAD.pack(kind, key_id, time_ms, len(raw)) + raw


def _entry_message(origin: str, index: int, leaf: bytes, time_ms: int, key_id: bytes) -> bytes:
    return _head(TYPE_ENTRY, key_id, time_ms, origin) + _ENTRY_TAIL.pack(index, leaf)


def _batch_message(
    origin: str, first: int, count: int, root: bytes, time_ms: int, key_id: bytes
) -> bytes:
    return _head(TYPE_BATCH, key_id, time_ms, origin) + _BATCH_TAIL.pack(first, count, root)


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


# -- strict decoding -------------------------------------------------------------------------


def _decode_head(data: bytes) -> tuple[int, bytes, int, str, int]:
    """(type, key id, time, origin, offset after the origin); refuses unknown versions."""
    if not isinstance(data, bytes) or len(data) < _HEAD.size:
        raise MalformedReceipt("the receipt is shorter than its fixed header")
    version, kind, key_id, time_ms, origin_len = _HEAD.unpack_from(data)
    if version != VERSION:
        raise UnsupportedVersion(f"receipt format version {version} is not supported")
    if kind not in (TYPE_ENTRY, TYPE_BATCH):
        raise UnsupportedVersion(f"receipt type {kind} is not supported")
    end = _HEAD.size + origin_len
    if len(data) < end:
        raise MalformedReceipt("the receipt is shorter than its origin")
    try:
        origin = data[_HEAD.size : end].decode()
    except UnicodeDecodeError as exc:
        raise MalformedReceipt("the origin is not UTF-8") from exc
    return kind, key_id, time_ms, origin, end


def _exact(data: bytes, size: int) -> None:
    if len(data) != size:
        raise MalformedReceipt(f"the receipt is {len(data)} bytes where {size} were expected")


def decode_batch(data: bytes) -> BatchReceipt:
    """Parse a batch's encoding (exactly its bytes, nothing after the signature)."""
    batch, end = _decode_batch_prefix(data)
    _exact(data, end)
    return batch


def _decode_batch_prefix(data: bytes) -> tuple[BatchReceipt, int]:
    kind, key_id, time_ms, origin, at = _decode_head(data)
    if kind != TYPE_BATCH:
        raise MalformedReceipt("the receipt is not a batch receipt")
    end = at + _BATCH_TAIL.size + SIGNATURE_SIZE
    if len(data) < end:
        raise MalformedReceipt("the batch receipt is truncated")
    first, count, root = _BATCH_TAIL.unpack_from(data, at)
    signature = data[at + _BATCH_TAIL.size : end]
    return BatchReceipt(origin, first, count, root, time_ms, key_id, signature), end


def decode(data: bytes) -> AnyReceipt:
    """Parse an entry's stored receipt, single or batch entry, refusing any byte too few or
    too many and any unknown version or type."""
    kind, key_id, time_ms, origin, at = _decode_head(data)
    if kind == TYPE_ENTRY:
        _exact(data, at + _ENTRY_TAIL.size + SIGNATURE_SIZE)
        index, leaf = _ENTRY_TAIL.unpack_from(data, at)
        signature = data[at + _ENTRY_TAIL.size :]
        return Receipt(origin, index, leaf, time_ms, key_id, signature)
    batch, at = _decode_batch_prefix(data)
    if len(data) < at + _PATH_HEAD.size:
        raise MalformedReceipt("the batch entry receipt has no index, leaf or path")
    index, leaf, length = _PATH_HEAD.unpack_from(data, at)
    at += _PATH_HEAD.size
    _exact(data, at + 32 * length)
    path = tuple(data[at + 32 * i : at + 32 * (i + 1)] for i in range(length))
    return BatchEntryReceipt(batch, index, leaf, path)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _unb64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedReceipt(f"the {what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedReceipt(f"the {what} is not base64") from exc


def _unhex_key_id(value: object) -> bytes:
    if not isinstance(value, str) or len(value) != 8:
        raise MalformedReceipt("the key id must be 8 hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise MalformedReceipt("the key id is not hex") from exc


_ENTRY_KEYS = {"format", "type", "origin", "index", "leaf_hash", "time", "key_id", "signature"}
_BATCH_KEYS = {"format", "type", "origin", "first", "count", "root", "time", "key_id", "signature"}
_BATCH_ENTRY_KEYS = _BATCH_KEYS | {"index", "leaf_hash", "path"}
_JSON_KEYS = {"entry": _ENTRY_KEYS, "batch_entry": _BATCH_ENTRY_KEYS}


def from_json(obj: Any) -> AnyReceipt:
    """Parse ``to_json``'s form strictly: exact fields, exact types, known format and type."""
    if not isinstance(obj, Mapping):
        raise MalformedReceipt("a receipt is a JSON object")
    if obj.get("format") != FORMAT:
        raise UnsupportedVersion(f"receipt format {obj.get('format')!r} is not supported")
    kind = obj.get("type")
    wanted = _JSON_KEYS.get(kind) if isinstance(kind, str) else None
    if wanted is None:
        raise UnsupportedVersion(f"receipt type {kind!r} is not supported here")
    if set(obj) != wanted:
        raise MalformedReceipt(f"a {kind} receipt has exactly the fields {sorted(wanted)}")
    key_id = _unhex_key_id(obj["key_id"])
    signature = _unb64(obj["signature"], "signature")
    leaf = _unb64(obj["leaf_hash"], "leaf hash")
    if kind == "entry":
        return Receipt(obj["origin"], obj["index"], leaf, obj["time"], key_id, signature)
    path = obj["path"]
    if not isinstance(path, list):
        raise MalformedReceipt("the path must be a list")
    batch = BatchReceipt(
        obj["origin"],
        obj["first"],
        obj["count"],
        _unb64(obj["root"], "range root"),
        obj["time"],
        key_id,
        signature,
    )
    return BatchEntryReceipt(batch, obj["index"], leaf, tuple(_unb64(p, "path") for p in path))


# -- verification ----------------------------------------------------------------------------

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
    ``leaf_hashes``, the leaves at [first, first + count), against the signed root."""
    verify_batch(batch, keys, origin)
    if len(leaf_hashes) != batch.count:
        raise IndexMismatch(f"the batch covers {batch.count} entries, {len(leaf_hashes)} given")
    if merkle.root_from_leaves(list(leaf_hashes)) != batch.root:
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
