"""The map's top strata held with a checkpoint (migration 0032): those sent to be held are the
stored ones, a held read starts the key's path below them, proofs served holding them are the
ones read whole, and they are never used against any checkpoint but the one they were read
with."""

from __future__ import annotations

import dataclasses
import json
import uuid

import pytest
from sqlalchemy import text

from shared import tlog
from shared.evidence import current as verifier
from shared.integrity import heads_map
from shared.registry import current
from shared.storage import map_strata, proof_reads, proof_reply
from shared.storage.engine import database
from shared.tlog import keys
from tests.registry.test_current_proof_held import _reader, _whole
from tests.registry.test_current_proof_reads import _other_tenant
from tests.support.seeding import seed_skills


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
    other, _ = _other_tenant(app, make_token)
    current.current_proof(_reader(other), "skills", str(uuid.uuid4()))
    assert [k.rsplit("/", 1)[1] for k in current._FIXED] == [other]
