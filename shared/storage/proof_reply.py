"""The packed value ``plant_current_proof`` answers with (migration 0032), split into the
parts of a current-version proof.

One ``bytea`` instead of 15 columns: the driver parses one field, where a 15-field row was a
third of the statement's client CPU. Its layout: the checkpoint's size (int8), the held flag
and the held levels' floor (int2 each), then 13 parts, each its length (int4, -1 for none) and
its bytes: the note and the commit's type (UTF-8), the commit's body, the version's index
(int8), kind (UTF-8), number (int4), leaf hash and body, the certificate's index (int8) and
body, the map's strata on the key's path, the log nodes, the strata sent whole to be held.
A value that is not exactly this is refused (``MalformedReply``), never read as a proof.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from shared.storage import map_strata, tree

_HEAD = struct.Struct(">qhh")  # the checkpoint's size, held (0 or 1), the held levels' floor
_LENGTH = struct.Struct(">i")  # each part's length; -1 for none
_PARTS = 13


class MalformedReply(RuntimeError):
    """The function's value is not the packed parts it writes: a fault of the database or
    of the function, never a proof to serve."""


@dataclass(frozen=True)
class Version:
    """The entity's newest version entry below the commit, as the log stores it."""

    index: int
    kind: str
    version: int
    leaf_hash: bytes
    body: bytes


@dataclass(frozen=True)
class CurrentParts:
    """What ``plant_current_proof`` read: the checkpoint (size, signed note); the entry at
    size - 1 (type and body; None when missing); the newest version and certificate entries
    of the entity below size - 1; and the stored nodes its proofs need: the map's strata
    on the entity's key path as read (``map_nodes`` reads them by address, raising
    MalformedStratum for one that is not whole records), the log's by (level, index).

    ``held``: the checkpoint is the one the caller said it holds, so of the log only the
    version's and certificate's siblings below level ``top`` were read, and of the map only
    the strata from the caller's ``start``; otherwise, for a caller holding any, every node
    from level ``top`` up too, and the map's top strata whole (``whole_strata``, packed:
    ``held_strata`` reads them)."""

    size: int
    held: bool
    top: int
    note: str
    commit: tuple[str, bytes] | None
    version: Version | None
    certificate: tuple[int, bytes] | None
    key: bytes
    map_path: bytes
    log_nodes: dict[tree.Key, bytes]
    whole_strata: bytes = b""

    @property
    def map_nodes(self) -> map_strata.Strata:
        return path_strata(self.key, self.map_path)


def split(reply: bytes, key: bytes) -> CurrentParts:
    """The parts packed in ``reply`` (migration 0032's layout) for the entity of ``key``;
    MalformedReply unless it is exactly that: a part cut short, a length past the end, bytes
    left over, an index not 8 bytes, a flag not 0 or 1, an entry with half its fields."""
    if len(reply) < _HEAD.size:
        raise MalformedReply(f"a reply of {len(reply)} bytes is shorter than its header")
    size, held, top = _HEAD.unpack_from(reply)
    if held not in (0, 1) or not 0 <= top <= 64 or size < 0:
        raise MalformedReply(f"a header of size {size}, held {held}, top {top}")
    parts: list[bytes | None] = []
    at, end = _HEAD.size, len(reply)
    for n in range(_PARTS):
        if at + _LENGTH.size > end:
            raise MalformedReply(f"the reply ends before part {n + 1} of {_PARTS}")
        (length,) = _LENGTH.unpack_from(reply, at)
        at += _LENGTH.size
        if length < -1 or at + length > end:
            raise MalformedReply(f"part {n + 1} of {_PARTS} is {length} bytes, past the end")
        parts.append(None if length == -1 else reply[at : at + length])
        at += max(length, 0)
    if at != end:
        raise MalformedReply(f"{end - at} bytes after the last part")
    note, kind, body, v_idx, v_kind, v_number, v_leaf, v_body, c_idx, c_body = parts[:10]
    map_path, log_path, whole = parts[10:]
    if note is None or map_path is None or log_path is None or whole is None:
        raise MalformedReply("the note, the map's path, the log's nodes or the strata missing")
    version: Version | None = None
    commit: tuple[str, bytes] | None = None
    certificate: tuple[int, bytes] | None = None
    if _whole_or_none("version", v_idx, v_kind, v_number, v_leaf, v_body):
        assert v_leaf is not None and v_body is not None
        version = Version(_int(v_idx, 8), _text(v_kind), _int(v_number, 4), v_leaf, v_body)
    if _whole_or_none("commit", kind, body):
        assert body is not None
        commit = (_text(kind), body)
    if _whole_or_none("certificate", c_idx, c_body):
        assert c_body is not None
        certificate = (_int(c_idx, 8), c_body)
    return CurrentParts(
        size=size,
        held=bool(held),
        top=top,
        note=_text(note),
        commit=commit,
        version=version,
        certificate=certificate,
        key=key,
        map_path=map_path,
        log_nodes=tree.split_nodes(log_path),
        whole_strata=whole,
    )


def _whole_or_none(what: str, *fields: bytes | None) -> bool:
    """Whether an entry's fields are all there (False: none is); MalformedReply for some."""
    present = sum(f is not None for f in fields)
    if 0 < present < len(fields):
        raise MalformedReply(f"a {what} entry with {len(fields) - present} of its fields missing")
    return present > 0


def _int(part: bytes | None, width: int) -> int:
    if part is None or len(part) != width:
        raise MalformedReply(f"an integer part of {part and len(part)} bytes, not {width}")
    return int.from_bytes(part, "big", signed=True)


def _text(part: bytes | None) -> str:
    if part is not None:
        try:
            return part.decode()
        except UnicodeDecodeError:
            pass
    raise MalformedReply("a text part missing or not UTF-8")


def path_strata(
    key: bytes, packed: bytes, held: map_strata.Strata | None = None
) -> map_strata.Strata:
    """The strata of one packed value (per stratum: its level in 2 bytes, its length in 4,
    its stored bytes), each under its prefix of ``key``, after those of ``held`` on the
    key's path (the top levels, when the value starts below them); MalformedStratum when one
    is not whole records in order."""
    out = map_strata.Strata()
    if held is not None:
        for level in range(len(key) + 1):
            row = held.rows.get(key[:level])
            if row is None:
                break
            out.put(key[:level], row)
    at = 0
    while at < len(packed):
        level = int.from_bytes(packed[at : at + 2], "big")
        size = int.from_bytes(packed[at + 2 : at + 6], "big")
        out.add(key[:level], packed[at + 6 : at + 6 + size])
        at += 6 + size
    return out


def held_strata(packed: bytes, levels: int) -> map_strata.Strata:
    """The strata sent whole to be held (per stratum: its level in 2 bytes, below
    ``levels``, its prefix, its length in 4 bytes, its stored bytes), each checked whole;
    MalformedReply when the value is cut short, MalformedStratum when a stratum is not
    whole records in order."""
    out = map_strata.Strata()
    at = 0
    while at < len(packed):
        level = int.from_bytes(packed[at : at + 2], "big")
        start = at + 2 + level + 4
        if start > len(packed):
            raise MalformedReply("the held strata end inside a stratum's header")
        size = int.from_bytes(packed[start - 4 : start], "big")
        if level >= levels or start + size > len(packed):
            raise MalformedReply(f"a held stratum of level {level}, {size} bytes, past the end")
        out.add(packed[at + 2 : at + 2 + level], packed[start : start + size])
        at = start + size
    return out
