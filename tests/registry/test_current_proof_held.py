"""Current-version proofs served while holding a checkpoint's fixed parts (migration 0028):
the same document byte for byte as one read whole, never against a checkpoint older than the
latest, and the held statement reading only the entity's own nodes."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import text

from shared import tlog
from shared.evidence import current as verifier
from shared.integrity import heads_map
from shared.registry import current
from shared.security.principal import Principal
from shared.storage import proof_reads, tree
from shared.storage.engine import database
from shared.tlog import keys


def _reader(tenant: str) -> Principal:
    return Principal("r", tenant, frozenset({"reader"}))


def _whole(tenant: str, entity: str) -> dict:
    """The document read without holding anything (as a bundle reads it)."""
    with database().transaction(tenant, snapshot=True) as conn:
        last = tree.latest_checkpoint(conn)
        assert last is not None
        return current.document(conn, tenant, last, entity, "skill")


def _size(tenant: str) -> int:
    with database().transaction(tenant) as conn:
        return tree.latest_checkpoint(conn).size  # type: ignore[union-attr]


@pytest.mark.parametrize("width", [1, 2, 4, proof_reads.HELD_WIDTH])
def test_held_proofs_are_the_whole_ones_and_follow_each_seal(
    api, tenant, certify, monkeypatch, width
):
    """Widths 1 to 1,024 put the held levels' floor (``top``) at the root, inside the tree
    and at the leaves; each proof served twice (filling, then held) equals the one read
    whole, for an entity certified, amended, draft and absent, over three seals."""
    monkeypatch.setattr(proof_reads, "HELD_WIDTH", width)
    monkeypatch.setattr(current, "_FIXED", {})
    skills = [api.skill(f"s{i}") for i in range(5)]
    certify("skills", skills[0])
    change = {"description": "new", "amendment_reason": "x"}
    assert api.patch(f"/skills/{skills[1]}", change, **{"If-Match": '"v1"'}).status_code == 200
    sizes = []
    for extra in range(3):
        tlog.seal(tenant)
        sizes.append(_size(tenant))
        for entity in [*skills, str(uuid.uuid4())]:
            for _ in range(2):
                served = current.current_proof(_reader(tenant), "skills", entity)
                assert json.dumps(served) == json.dumps(_whole(tenant, entity))
                assert served["map_commit"]["index"] == sizes[-1] - 1  # the latest
            assert verifier.check(served, list(keys.keyring().vkeys)).tenant == tenant
        (held,) = current._FIXED.values()
        assert held.size == sizes[-1]
        for i in range(extra + 2):
            api.skill(f"more {extra} {i}")
    assert len(set(sizes)) == 3 and {s % 2 for s in sizes} == {0, 1}


def test_a_held_read_returns_only_the_entitys_nodes_below_the_held_levels(api, tenant):
    skills = [api.skill(f"s{i}") for i in range(9)]
    tlog.seal(tenant)
    size = _size(tenant)  # 10: 9 skills and the commit
    with database().autocommit() as conn:
        filled = proof_reads.current_parts(conn, tenant, skills[2], None, 0)
        held = proof_reads.current_parts(conn, tenant, skills[2], None, size)
        stale = proof_reads.current_parts(conn, tenant, skills[2], None, size - 1)
        whole = proof_reads.current_parts(conn, tenant, skills[2], None, None)
    assert filled is not None and held is not None and stale is not None and whole is not None
    top = filled.top
    assert (size >> top) < proof_reads.HELD_WIDTH and top == held.top == 0
    assert held.held and not filled.held and not stale.held and not whole.held
    # held at top 0: every level is held whole, so no log node is read at all
    assert held.log_nodes == {} and held.note == filled.note and held.commit == filled.commit
    every = {(lv, i) for lv in range(top, 4) for i in range(size >> lv)}
    assert every <= set(filled.log_nodes) and every <= set(stale.log_nodes)
    assert not every <= set(whole.log_nodes)  # a bundle's read holds nothing, reads no more


def test_a_held_read_at_a_narrow_width_reads_the_version_path_below_top(api, tenant, monkeypatch):
    monkeypatch.setattr(proof_reads, "HELD_WIDTH", 2)
    skills = [api.skill(f"s{i}") for i in range(9)]
    tlog.seal(tenant)
    size = _size(tenant)
    with database().autocommit() as conn:
        held = proof_reads.current_parts(conn, tenant, skills[2], None, size)
    assert held is not None and held.version is not None and held.held
    assert held.top == 3  # 10 >> 3 = 1 < 2
    index = held.version.index
    assert set(held.log_nodes) == {
        (lv, (index >> lv) ^ 1) for lv in range(held.top) if (index >> lv) ^ 1 < size >> lv
    }


def test_the_map_read_stops_at_the_first_missing_stratum(api, tenant, superuser):
    """A stratum planted below a missing one is on no proof's path: it is not read, and the
    proof is the one without it."""
    skill = api.skill("only")
    api.skill("other")
    tlog.seal(tenant)
    before = current.current_proof(_reader(tenant), "skills", skill)
    key = heads_map.entity_key(uuid.UUID(skill))
    with superuser.begin() as conn:
        present = {
            bytes(p)
            for p in conn.execute(
                text("SELECT prefix FROM heads_map_strata WHERE tenant_id = :t"), {"t": tenant}
            ).scalars()
        }
        missing = next(g for g in range(33) if key[:g] not in present)
        conn.execute(
            text("INSERT INTO heads_map_strata (tenant_id, prefix, nodes) VALUES (:t, :p, :n)"),
            {"t": tenant, "p": key[: missing + 1], "n": b"\x01" + bytes(65)},
        )
    with database().autocommit() as conn:
        parts = proof_reads.current_parts(conn, tenant, skill, None, None)
    assert parts is not None and set(parts.map_nodes.rows) == {key[:g] for g in range(missing)}
    assert current.current_proof(_reader(tenant), "skills", skill) == before
