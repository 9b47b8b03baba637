"""``plant_current_proof``'s packed value (migration 0032): read part for part, and a value
cut, padded or with a part of the wrong shape refused (``MalformedReply``), never read as a
proof; the strata sent to be held likewise."""

from __future__ import annotations

import struct
import uuid

import pytest

from shared import tlog
from shared.integrity import heads_map
from shared.storage import direct, map_strata, proof_reads, proof_reply
from shared.storage.engine import database
from shared.storage.proof_reply import MalformedReply


def _reply(tenant: str, entity: str, held: int | None, strata: int, start: int) -> bytes:
    """The function's value as the application role reads it."""
    with database().autocommit() as conn:
        params = (tenant, entity, None, held, proof_reads.HELD_WIDTH, strata, start)
        return bytes(direct.run(conn, proof_reads._CURRENT, params)[0][0])


def _pack(size: int, held: int, top: int, parts: list[bytes | None]) -> bytes:
    """A value laid out as migration 0032 writes it, from hand-made parts."""
    out = struct.pack(">qhh", size, held, top)
    for part in parts:
        out += struct.pack(">i", -1) if part is None else struct.pack(">i", len(part)) + part
    return out


def _parts(**change: bytes | None) -> list[bytes | None]:
    """The 13 parts of a proof with a version and a certificate, with ``change`` put in."""
    given = {
        "note": b"note",
        "commit_type": b"map_commit",
        "commit_body": b"{}",
        "version_index": (3).to_bytes(8, "big"),
        "version_kind": b"skill",
        "version_number": (2).to_bytes(4, "big"),
        "version_leaf": bytes(32),
        "version_body": b"{}",
        "certificate_index": (4).to_bytes(8, "big"),
        "certificate_body": b"{}",
        "map_path": b"",
        "log_path": b"",
        "strata": b"",
    }
    given.update(change)
    return list(given.values())


def test_a_hand_packed_value_is_read_part_for_part():
    parts = proof_reply.split(_pack(6, 1, 2, _parts()), bytes(32))
    assert (parts.size, parts.held, parts.top, parts.note) == (6, True, 2, "note")
    assert parts.commit == ("map_commit", b"{}") and parts.certificate == (4, b"{}")
    assert parts.version == proof_reply.Version(3, "skill", 2, bytes(32), b"{}")
    absent = _parts(**dict.fromkeys(("version_index", "version_kind", "version_number"), None))
    absent[6:10] = [None] * 4  # no version, no certificate
    bare = proof_reply.split(_pack(6, 0, 2, absent), bytes(32))
    assert bare.version is None and bare.certificate is None and not bare.held


@pytest.mark.parametrize(
    "value",
    [
        _pack(6, 2, 2, _parts()),  # a held flag neither 0 nor 1
        _pack(6, 1, 65, _parts()),  # a floor above the tree
        _pack(-1, 1, 2, _parts()),  # a negative size
        _pack(6, 1, 2, _parts(version_index=bytes(7))),  # an index not 8 bytes
        _pack(6, 1, 2, _parts(version_number=bytes(8))),  # a number not 4 bytes
        _pack(6, 1, 2, _parts(version_leaf=None)),  # a version with a field missing
        _pack(6, 1, 2, _parts(commit_body=None)),  # a commit's type without its body
        _pack(6, 1, 2, _parts(certificate_index=None)),  # a certificate's body alone
        _pack(6, 1, 2, _parts(note=b"\xff\xfe")),  # a note not UTF-8
        _pack(6, 1, 2, _parts(note=None)),  # no note
        _pack(6, 1, 2, _parts(strata=None)),  # no strata part
        _pack(6, 1, 2, _parts()[:12]),  # a part short
        _pack(6, 1, 2, [*_parts(), b""]),  # a part over
        _pack(6, 1, 2, _parts()).replace(b"\x00\x00\x00\x04note", b"\xff\xff\xff\xfenote"),
        _pack(6, 1, 2, _parts()).replace(b"\x00\x00\x00\x04note", b"\x00\x00\x10\x00note"),
    ],
)
def test_a_value_not_as_packed_is_refused(value):
    with pytest.raises(MalformedReply):
        proof_reply.split(value, bytes(32))


def test_every_cut_of_a_real_value_and_one_padded_are_refused(api, tenant, certify):
    skill = api.skill("packed")
    api.skill("other")
    certify("skills", skill)
    tlog.seal(tenant)
    value = _reply(tenant, skill, 0, proof_reads.HELD_STRATA, 0)
    key = heads_map.entity_key(uuid.UUID(skill))
    parts = proof_reply.split(value, key)
    assert parts.version is not None and parts.certificate is not None and parts.whole_strata
    for cut in range(len(value)):
        with pytest.raises(MalformedReply):
            proof_reply.split(value[:cut], key)
    with pytest.raises(MalformedReply):
        proof_reply.split(value + b"\x00", key)


def test_held_strata_cut_short_or_too_deep_are_refused():
    row = map_strata.encode({1: b"\x03" + bytes(64)})
    good = b"\x00\x01\x07" + len(row).to_bytes(4, "big") + row
    assert set(proof_reply.held_strata(good, 2).rows) == {b"\x07"}
    for cut in range(1, len(good)):
        with pytest.raises((MalformedReply, map_strata.MalformedStratum)):
            proof_reply.held_strata(good[:cut], 2)
    with pytest.raises(MalformedReply):
        proof_reply.held_strata(good, 1)  # a level-1 stratum where only level 0 is held
