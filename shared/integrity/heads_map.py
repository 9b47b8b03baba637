"""The map of entity heads: its keys, its values, its proofs as JSON, and the ``map_commit`` entry.

Each tenant's heads form a sparse Merkle tree (``sparse_merkle``). An entity's key is
``SHA-256(entity id's 16 bytes)``, the UUID's bytes in RFC 9562 order: hashing spreads
version-7 ids (which share their 48-bit time prefix) evenly over the tree, so paths stay
log2(n) long. The value is the head's fixed binary layout (``encode_head``), exact and
decoded strictly, so that the bytes a proof commits to have one reading. Each seal appends a
``map_commit`` entry to the log: RFC 8785 canonical JSON like every other entry, whose bytes
are spelled out in ``encode_commit`` and ``docs/formats.md``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.integrity.sparse_merkle import DEPTH, Proof

HEAD_FORMAT = 1
COMMIT_FORMAT = "plant-map-commit/1"
_NAME = re.compile(rb"[a-z][a-z0-9_]{0,31}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_U64 = 1 << 64


class MalformedHead(ValueError):
    """Bytes that are not exactly a head value of a known format."""


class MalformedCommit(ValueError):
    """Bytes that are not exactly a ``map_commit`` entry."""


class MalformedProof(ValueError):
    """JSON that is not exactly a map proof."""


def entity_key(entity_id: uuid.UUID) -> bytes:
    """The map key of an entity: SHA-256 of its id's 16 bytes (RFC 9562 order)."""
    return hashlib.sha256(entity_id.bytes).digest()


@dataclass(frozen=True)
class Head:
    """An entity's current version as the map commits to it."""

    kind: str  # the entity type, e.g. "skill", "job_role"
    entity_id: uuid.UUID
    version: int  # the current version, from 1
    log_index: int  # that version's log index
    leaf_hash: bytes  # that version's RFC 9162 leaf hash, SHA-256(0x00 || entry)
    status: str  # e.g. "certified"
    certificate_index: int | None  # the log index of that version's certificate, if any

    @property
    def key(self) -> bytes:
        return entity_key(self.entity_id)


def _name(text: str, what: str) -> bytes:
    data = text.encode("ascii", "replace")
    if not _NAME.fullmatch(data):
        raise ValueError(f"{what} must be 1 to 32 of a-z 0-9 _, starting with a letter")
    return data


def encode_head(head: Head) -> bytes:
    """The value bytes (format 1), fixed fields first, all integers unsigned big-endian:

    0x01 (format) || entity id (16) || version (8) || log index (8) || leaf hash (32) ||
    certificate flag (1: 0x00 none, 0x01 present) || certificate log index (8, zero when
    none) || len(kind) (1) || kind (ASCII) || len(status) (1) || status (ASCII).
    """
    if not 1 <= head.version < _U64 or not 0 <= head.log_index < _U64:
        raise ValueError("version must be 1 to 2**64 - 1 and log_index 0 to 2**64 - 1")
    if len(head.leaf_hash) != 32:
        raise ValueError("leaf_hash must be 32 bytes")
    cert = head.certificate_index
    if cert is not None and not 0 <= cert < _U64:
        raise ValueError("certificate_index must be 0 to 2**64 - 1")
    kind, status = _name(head.kind, "kind"), _name(head.status, "status")
    return b"".join(
        (
            bytes((HEAD_FORMAT,)),
            head.entity_id.bytes,
            head.version.to_bytes(8, "big"),
            head.log_index.to_bytes(8, "big"),
            head.leaf_hash,
            b"\x00" + bytes(8) if cert is None else b"\x01" + cert.to_bytes(8, "big"),
            bytes((len(kind),)) + kind,
            bytes((len(status),)) + status,
        )
    )


def decode_head(data: bytes) -> Head:
    """The head in ``data``; MalformedHead unless ``data`` is exactly what ``encode_head``
    writes for it (known format, flag 0 or 1, zero index without certificate, names in
    their alphabet, nothing left over)."""
    if len(data) < 76 or data[0] != HEAD_FORMAT:
        raise MalformedHead("not a format-1 head value")
    flag, cert = data[65], int.from_bytes(data[66:74], "big")
    if flag not in (0, 1) or (flag == 0 and cert):
        raise MalformedHead("the certificate flag is not 0x00 with a zero index or 0x01")
    at, names = 74, []
    for what in ("kind", "status"):
        size = data[at] if at < len(data) else 0
        name = data[at + 1 : at + 1 + size]
        if len(name) != size or not _NAME.fullmatch(name):
            raise MalformedHead(f"the {what} is not 1 to 32 of a-z 0-9 _")
        names.append(name.decode("ascii"))
        at += 1 + size
    if at != len(data):
        raise MalformedHead(f"{len(data) - at} bytes after the status")
    version = int.from_bytes(data[17:25], "big")
    if version == 0:
        raise MalformedHead("version 0")
    return Head(
        kind=names[0],
        entity_id=uuid.UUID(bytes=data[1:17]),
        version=version,
        log_index=int.from_bytes(data[25:33], "big"),
        leaf_hash=data[33:65],
        status=names[1],
        certificate_index=cert if flag else None,
    )


@dataclass(frozen=True)
class MapCommit:
    """The map's root after the first ``log_size`` log entries, appended at index
    ``log_size`` by the seal of ``sealed_at`` (UTC, whole seconds)."""

    log_size: int
    map_root: bytes
    sealed_at: datetime


def encode_commit(commit: MapCommit) -> bytes:
    """The entry's bytes, RFC 8785 canonical JSON with its four members in this order:

    ``{"format":"plant-map-commit/1","log_size":<decimal, no sign or leading zero>,
    "map_root":"<standard base64 of 32 bytes, padded: 44 chars>",
    "sealed_at":"YYYY-MM-DDTHH:MM:SSZ"}`` (no spaces, no newline, ASCII only).
    """
    when = commit.sealed_at
    if when.tzinfo is None or when.utcoffset() or when.microsecond:
        raise ValueError("sealed_at must be UTC with whole seconds")
    if not 0 <= commit.log_size < 1 << 63 or len(commit.map_root) != 32:
        raise ValueError("log_size must be 0 to 2**63 - 1 and map_root 32 bytes")
    root = base64.b64encode(commit.map_root).decode("ascii")
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f'{{"format":"{COMMIT_FORMAT}","log_size":{commit.log_size},'
        f'"map_root":"{root}","sealed_at":"{stamp}"}}'
    ).encode("ascii")


def is_commit(entry: bytes) -> bool:
    """Whether a log entry claims to be a map commit (then ``decode_commit`` must accept it)."""
    return entry.startswith(b'{"format":"plant-map-commit/')


def decode_commit(entry: bytes) -> MapCommit:
    """The commit in ``entry``; MalformedCommit unless ``entry`` is byte for byte what
    ``encode_commit`` writes for the values it holds."""
    try:
        doc = json.loads(entry.decode("ascii"))
        root = base64.b64decode(doc["map_root"], validate=True)
        stamp = doc["sealed_at"]
        if type(stamp) is not str or not _TIME.fullmatch(stamp):
            raise ValueError("sealed_at")
        when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        if type(doc["log_size"]) is not int:
            raise ValueError("log_size")
        commit = MapCommit(doc["log_size"], root, when)
        same = encode_commit(commit) == entry
    except (ValueError, TypeError, KeyError, binascii.Error) as exc:
        raise MalformedCommit(f"not a map commit entry ({exc})") from None
    if not same:
        raise MalformedCommit("not the exact bytes of a plant-map-commit/1 entry")
    return commit


def _b64(value: Any) -> bytes:
    if type(value) is not str:
        raise MalformedProof("a hash is not a string")
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise MalformedProof("a hash is not base64") from None
    if len(raw) != 32 or base64.b64encode(raw).decode("ascii") != value:
        raise MalformedProof("a hash is not the padded base64 of 32 bytes")
    return raw


def proof_to_json(proof: Proof) -> dict[str, Any]:
    """``{"siblings": [base64, ...] deepest first, "other_leaf": null | {"key": base64,
    "value_hash": base64}}``, standard padded base64 of 32 bytes each."""
    other = proof.other_leaf
    return {
        "siblings": [base64.b64encode(s).decode("ascii") for s in proof.siblings],
        "other_leaf": None
        if other is None
        else {
            "key": base64.b64encode(other[0]).decode("ascii"),
            "value_hash": base64.b64encode(other[1]).decode("ascii"),
        },
    }


def proof_from_json(doc: Any) -> Proof:
    """The proof in ``doc``; MalformedProof for any other member, type, length or encoding."""
    if type(doc) is not dict or set(doc) != {"siblings", "other_leaf"}:
        raise MalformedProof('a map proof has exactly "siblings" and "other_leaf"')
    siblings, other = doc["siblings"], doc["other_leaf"]
    if type(siblings) is not list or len(siblings) > DEPTH:
        raise MalformedProof("siblings is a list of at most 256 hashes")
    if other is not None and (type(other) is not dict or set(other) != {"key", "value_hash"}):
        raise MalformedProof('other_leaf is null or has exactly "key" and "value_hash"')
    return Proof(
        tuple(_b64(s) for s in siblings),
        None if other is None else (_b64(other["key"]), _b64(other["value_hash"])),
    )
