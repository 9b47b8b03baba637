"""``plant_current_proof``'s packed value and the map's top strata held with a checkpoint
(migration 0032): a value cut, padded or with a part of the wrong shape is refused, never read
as a proof; the held strata are those stored, cut the key's path below them, and are never
used against any checkpoint but the one they were read with."""

from __future__ import annotations

import dataclasses
import json
import struct
import uuid

import pytest
from sqlalchemy import text

from shared import tlog
from shared.evidence import current as verifier
from shared.integrity import heads_map
from shared.registry import current
from shared.security.principal import Principal
from shared.storage import direct, map_strata, proof_reads, proof_reply, tree
from shared.storage.engine import database
from shared.storage.proof_reply import MalformedReply
from shared.tlog import keys
from tests.support.seeding import seed_skills


def _reader(tenant: str) -> Principal:
    return Principal("r", tenant, frozenset({"reader"}))


def _whole(tenant: str, entity: str) -> dict:
    """The document read without holding anything (as a bundle reads it)."""
    with database().transaction(tenant, snapshot=True) as conn:
        last = tree.latest_checkpoint(conn)
        assert last is not None
        return current.document(conn, tenant, last, entity, "skill")


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


def _deep_entity(superuser, tenant: str) -> str:
    """An entity whose key shares its first two bytes with another's (its path reaches the
    map's third level of strata)."""
    with superuser.connect() as su:
        ids = [
            str(i)
            for i in su.execute(
                text("SELECT entity_id FROM entity_heads WHERE tenant_id = :t"), {"t": tenant}
            ).scalars()
        ]
    seen: dict[bytes, str] = {}
    for entity in ids:
        top = heads_map.entity_key(uuid.UUID(entity))[:2]
        if top in seen:
            return entity
        seen[top] = entity
    raise AssertionError("no two keys share two bytes")


def test_a_held_read_starts_the_map_below_the_held_strata(api, tenant, superuser):
    seed_skills(superuser, tenant, 0, 1500)
    tlog.seal(tenant)
    entity = _deep_entity(superuser, tenant)
    levels = proof_reads.HELD_STRATA
    with database().autocommit() as conn:
        filled = proof_reads.current_parts(conn, tenant, entity, None, 0, levels)
        assert filled is not None
        size = filled.size
        held = proof_reads.current_parts(conn, tenant, entity, None, size, levels, levels)
        ended = proof_reads.current_parts(
            conn, tenant, entity, None, size, levels, proof_reads.NO_MORE_STRATA
        )
        stale = proof_reads.current_parts(conn, tenant, entity, None, size - 1, levels, levels)
        bundle = proof_reads.current_parts(conn, tenant, entity, None, None, levels)
    assert held is not None and ended is not None and stale is not None and bundle is not None
    with superuser.connect() as su:
        stored = {
            bytes(p): bytes(n)
            for p, n in su.execute(
                text(
                    "SELECT prefix, nodes FROM heads_map_strata "
                    "WHERE tenant_id = :t AND length(prefix) < :l"
                ),
                {"t": tenant, "l": levels},
            )
        }
    assert len(stored) > 2  # the root stratum and strata below it
    assert proof_reply.held_strata(filled.whole_strata, levels).rows == stored
    # sent whole only to a caller filling: not when held, not to a bundle's read
    assert held.held and held.whole_strata == b"" and bundle.whole_strata == b""
    assert not stale.held and stale.whole_strata == filled.whole_strata
    read = set(filled.map_nodes.rows)
    assert {len(p) for p in read} >= {0, 1, 2}
    assert set(held.map_nodes.rows) == {p for p in read if len(p) >= levels}
    assert set(stale.map_nodes.rows) == read  # not the held one: read from the root
    assert ended.map_path == b""
    key = heads_map.entity_key(uuid.UUID(entity))
    strata = proof_reply.held_strata(filled.whole_strata, levels)
    assert proof_reads.start_below(key, strata) == levels
    assert proof_reads.start_below(b"\x00" * 32, map_strata.Strata()) == proof_reads.NO_MORE_STRATA
    # the held strata and the strata read below them hold every node the filling read held
    joined = proof_reads.ReadNodes(held, None, strata).get_paths([key])
    assert all(joined.get(address) == node for address, node in filled.map_nodes.items())


@pytest.mark.parametrize("levels", [0, 1, 2])
def test_proofs_served_with_held_strata_are_the_whole_ones_over_seals(
    api, tenant, superuser, monkeypatch, levels
):
    """Holding no level, the root stratum, or it and the level below: each proof served
    twice (filling, then held) equals the one read whole, for keys whose paths end in the
    held strata, below them, and absent ones, over seals that rewrite the strata."""
    monkeypatch.setattr(proof_reads, "HELD_STRATA", levels)
    monkeypatch.setattr(current, "_FIXED", {})
    seed_skills(superuser, tenant, 0, 1500)
    deep = _deep_entity(superuser, tenant)
    with superuser.connect() as su:
        some = [
            str(i)
            for i in su.execute(
                text("SELECT entity_id FROM entity_heads WHERE tenant_id = :t LIMIT 4"),
                {"t": tenant},
            ).scalars()
        ]
    for seal in range(2):
        tlog.seal(tenant)
        for entity in [deep, *some, str(uuid.uuid4())]:
            for _ in range(2):
                served = current.current_proof(_reader(tenant), "skills", entity)
                assert json.dumps(served) == json.dumps(_whole(tenant, entity))
        assert verifier.check(served, list(keys.keyring().vkeys)).tenant == tenant
        (fixed,) = current._FIXED.values()
        assert {len(p) for p in fixed.strata.rows} == set(range(levels))
        api.skill(f"later {seal}")


def test_held_strata_of_an_older_checkpoint_are_never_used_for_a_newer_one(
    api, tenant, superuser, monkeypatch
):
    monkeypatch.setattr(current, "_FIXED", {})
    seed_skills(superuser, tenant, 0, 1500)
    tlog.seal(tenant)
    entity = _deep_entity(superuser, tenant)
    first = current.current_proof(_reader(tenant), "skills", entity)  # fills
    ((scope, fixed),) = current._FIXED.items()
    # spoil the held root stratum in the process: the last byte of each of the root's two
    # child hashes (what tampering.MAP_ROOT_CHILDREN_FLIPPED does to the stored row)
    root = bytearray(fixed.strata.rows[b""])
    root[33] ^= 1
    root[65] ^= 1
    spoiled = map_strata.Strata()
    for prefix, row in fixed.strata.rows.items():
        spoiled.put(prefix, bytes(root) if prefix == b"" else row)
    current._FIXED[scope] = dataclasses.replace(fixed, strata=spoiled)
    # against the held checkpoint the held strata are what the proof is made of ...
    held = current.current_proof(_reader(tenant), "skills", entity)
    assert held["map_proof"] != first["map_proof"]
    # ... and after a seal they are not: the proof is the whole one, and the new ones held
    api.skill("later")
    tlog.seal(tenant)
    after = current.current_proof(_reader(tenant), "skills", entity)
    assert json.dumps(after) == json.dumps(_whole(tenant, entity))
    assert after["map_commit"]["index"] > first["map_commit"]["index"]
    renewed = current._FIXED[scope]
    assert renewed.size == after["map_commit"]["index"] + 1
    with superuser.connect() as su:
        stored = su.execute(
            text("SELECT nodes FROM heads_map_strata WHERE tenant_id = :t AND prefix = ''"),
            {"t": tenant},
        ).scalar_one()
    assert renewed.strata.rows[b""] == bytes(stored)
    assert verifier.check(after, list(keys.keyring().vkeys)).head is not None


def test_the_oldest_scopes_go_while_the_held_strata_weigh_too_much(
    api, tenant, app, make_token, monkeypatch
):
    monkeypatch.setattr(current, "_FIXED", {})
    api.skill("mine")
    tlog.seal(tenant)
    current.current_proof(_reader(tenant), "skills", str(uuid.uuid4()))
    (mine,) = current._FIXED.values()
    assert mine.weight > 0
    monkeypatch.setattr(current, "_FIXED_BYTES", mine.weight)  # room for one scope
    other = f"t-{uuid.uuid4().hex[:12]}"
    headers = {"Authorization": f"Bearer {make_token(other, 'author', 'reader')}"}
    created = app.test_client().post(
        "/registry/skills",
        json={"name": "theirs", "description": "d", "category": "technical"},
        headers=headers,
    )
    assert created.status_code == 201
    tlog.seal(other)
    current.current_proof(_reader(other), "skills", str(uuid.uuid4()))
    assert [k.rsplit("/", 1)[1] for k in current._FIXED] == [other]
