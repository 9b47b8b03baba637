"""The receipts' bytes: their fields, checks, signed messages, stored encodings and JSON form
(the package's docstring spells the format)."""

from __future__ import annotations

import base64
import binascii
import functools
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
