"""What the entries pass hands the map pass of each entry it reads (issue 24), so that the
log is read once: per stretch of entries up to a ``map_commit``, each entity's newest version
(its status taken from the parse the entries pass made anyway) and newest certificate. A
worker's range goes back to the audit as its ``Feed``; the audit replays the feeds in log
order (``map_check.Replay``). ``head_value`` is the seal's rule (``map_commit.head_of`` then
``heads_map.encode_head``) without building a ``Head``: a full audit makes a million."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shared.integrity import map_memory

Version = tuple[int, str, int, bytes, str | None]  # index, kind, version, leaf hash, status

_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_NAMES: dict[str, bytes | None] = {}  # kind or status -> its length-prefixed bytes, if valid
# a kind as first read: each version's kind is this string (the extension interns in it too)
KINDS: dict[str, str] = {}
_U64 = 1 << 64
_NO_CERTIFICATE = bytes(9)


@dataclass
class Segment:
    """The entries after the previous commit (or the range's start) up to ``commit``, the
    ``map_commit`` that ends them (index, bytes), if the range holds it."""

    versions: dict[str, Version] = field(default_factory=dict)
    certificates: dict[str, int] = field(default_factory=dict)
    others: set[str] = field(default_factory=set)  # entities with another kind of entry
    commit: tuple[int, bytes] | None = None


class Feed:
    """One range's entries as the map needs them, in log order."""

    def __init__(self) -> None:
        self.segments = [Segment()]

    def entry(
        self, idx: int, entry_type: str, kind: str, entity_id: str, version: int, leaf: bytes,
        status: str | None, body: bytes,
    ) -> None:  # fmt: skip
        """An entry read, in index order (``status`` only of a version)."""
        segment = self.segments[-1]
        if entry_type == "version":
            kind = KINDS.setdefault(kind, kind)  # one string a kind, not one an entity
            segment.versions[entity_id] = (idx, kind, version, leaf, status)
        elif entry_type == "certificate":
            segment.certificates[entity_id] = idx
        elif entry_type == "map_commit":
            segment.commit = (idx, body)
            self.segments.append(Segment())
        else:
            segment.others.add(entity_id)

    def plain(self) -> list[tuple[Any, ...]]:
        """The segments as plain values, for ``marshal`` (``entry_ranges.Scanned``)."""
        return [(s.versions, s.certificates, s.others, s.commit) for s in self.segments]

    @classmethod
    def from_plain(cls, segments: list[tuple[Any, ...]]) -> Feed:
        """A feed from ``plain`` values."""
        feed = cls()
        feed.segments = [Segment(*values) for values in segments]
        return feed


def _name(text: str) -> bytes | None:
    found = _NAMES.get(text, b"")
    if found == b"":
        data = text.encode("ascii", "replace")
        found = bytes((len(data),)) + data if _NAME.fullmatch(text) else None
        _NAMES[text] = found
    return found


def entity_key(entity_id: str) -> bytes:
    """``heads_map.entity_key`` of an id as the database prints it (canonical text)."""
    return hashlib.sha256(bytes.fromhex(entity_id.replace("-", ""))).digest()


def head_value(version: Version, entity_id: str, certificate: int | None) -> bytes | None:
    """The value the map holds for an entity whose newest version is ``version`` and newest
    certificate ``certificate``: byte for byte ``encode_head(head_of(...))``, None where
    ``head_of`` gives none (no status, or a value no head can hold)."""
    idx, kind, number, leaf, status = version
    if status is None:
        return None
    kind_bytes, status_bytes = _name(kind), _name(status)
    if kind_bytes is None or status_bytes is None or len(leaf) != 32:
        return None
    if not (1 <= number < _U64 and 0 <= idx < _U64):
        return None
    if status != "certified" or certificate is None:
        cert = _NO_CERTIFICATE
    elif 0 <= certificate < _U64:
        cert = b"\x01" + certificate.to_bytes(8, "big")
    else:
        return None
    return b"".join(
        (
            b"\x01",
            bytes.fromhex(entity_id.replace("-", "")),
            number.to_bytes(8, "big"),
            idx.to_bytes(8, "big"),
            leaf,
            cert,
            kind_bytes,
            status_bytes,
        )
    )


def settled(version: Version, entity_id: str) -> Version | bytes | None:
    """A version as a full audit's replay holds it: its head value's SHA-256 (or None: no
    value), unless a certificate can still change that value (status "certified")."""
    if version[4] == "certified":
        return version
    value = head_value(version, entity_id, None)
    return None if value is None else hashlib.sha256(value).digest()


def settle(versions: dict[str, Any]) -> None:
    """Each of ``versions`` ``settled``, in place: a full audit holds a million, and the
    hash is ~100 bytes an entity less than the tuple; compiled where it can be (its twin:
    the loop here, tests/audit/test_head_records.py)."""
    if map_memory.NATIVE is not None:
        map_memory.NATIVE.head_digests(versions, settled)
        return
    for entity_id, version in versions.items():
        versions[entity_id] = settled(version, entity_id)


def _record(version: Any, entity_id: str, certificate: int | None) -> bytes | None:
    """The entity's key and its head value's SHA-256 (what the map takes), or None; a
    ``settled`` version is that hash already."""
    if isinstance(version, bytes):
        return entity_key(entity_id) + version
    value = head_value(version, entity_id, certificate)
    if value is None:
        return None
    return entity_key(entity_id) + hashlib.sha256(value).digest()


def head_records(
    versions: dict[str, Any], certificates: dict[str, int], entities: Iterable[str]
) -> tuple[bytes, list[str]]:
    """The map's records of the ``entities`` that have a head value, and their ids, in the
    order given: a full audit's per-commit loop, a million at the first commit of a seeded
    log, so the compiled module (``map_memory.NATIVE``) runs it where it can; it asks
    ``_record`` for any input not of the plain shape it handles, and the pure loop below is
    its twin (tests/integrity/test_map_memory.py holds them equal)."""
    if map_memory.NATIVE is not None:
        records: bytes
        named: list[str]
        records, named = map_memory.NATIVE.head_records(versions, certificates, entities, _record)
        return records, named
    made, named = [], []
    for entity_id in entities:
        version = versions.get(entity_id)
        if version is None:
            continue
        record = _record(version, entity_id, certificates.get(entity_id))
        if record is not None:
            made.append(record)
            named.append(entity_id)
    return b"".join(made), named
