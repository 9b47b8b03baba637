"""Current-version proofs (issue 24): the seal's map commit, the route, offline verification,
and the attacks on each, with the step or finding each must end in."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from shared import tlog
from shared.cli import commands
from shared.evidence import current
from shared.integrity import heads_map, sparse_merkle
from shared.storage.engine import database
from shared.tlog import keys, map_commit
from tests.support import tampering


def _vkeys() -> list[str]:
    return list(keys.keyring().vkeys)


def _proof(api, entity_id: str, slug: str = "skills") -> dict:
    response = api.get(f"/{slug}/{entity_id}/proof/current")
    assert response.status_code == 200, response.json
    return response.json


def _step(doc: dict, **expect) -> str:
    with pytest.raises(current.StepFailed) as caught:
        current.check(doc, _vkeys(), **expect)
    return caught.value.step


def _entries(superuser, tenant: str) -> list[tuple[int, str, bytes]]:
    with superuser.connect() as conn:
        rows = conn.execute(
            text("SELECT idx, entry_type, body FROM log_entries WHERE tenant_id = :t ORDER BY idx"),
            {"t": tenant},
        ).all()
    return [(r[0], r[1], bytes(r[2])) for r in rows]


def test_every_seal_with_news_ends_with_a_map_commit_and_an_idle_seal_appends_none(
    api, tenant, superuser
):
    ids = [api.skill(f"s{i}") for i in range(3)]
    first = tlog.seal(tenant)
    again = tlog.seal(tenant)
    assert not again.created and again.checkpoint == first.checkpoint
    entries = _entries(superuser, tenant)
    assert [e[1] for e in entries] == ["version"] * 3 + ["map_commit"]
    commit = heads_map.decode_commit(entries[-1][2])
    assert commit.log_size == 3 and first.checkpoint.size == 4
    # the committed root is the map of exactly these three heads, recomputed in memory
    memory = sparse_merkle.MemoryNodeStore()
    with database().transaction(tenant) as conn:
        heads = map_commit.changed_heads(conn, 0, 3)
    assert sorted(heads) == sorted(ids)
    assert memory.update({h.key: heads_map.encode_head(h) for h in heads.values()}) == (
        commit.map_root
    )
    api.skill("s3")
    second = tlog.seal(tenant)
    assert second.checkpoint.size == 6
    assert heads_map.decode_commit(_entries(superuser, tenant)[-1][2]).log_size == 5


def test_a_certified_skill_proves_current_and_verify_current_exits_0(
    api, tenant, certify, tmp_path, capsys
):
    skill = api.skill("certified one")
    certify("skills", skill)
    tlog.seal(tenant)
    doc = _proof(api, skill)
    found = current.check(doc, _vkeys(), expect_status="certified", expect_version=2)
    assert found.head is not None and found.head.status == "certified"
    assert found.head.certificate_index is not None and doc["certificate"] is not None
    assert len(json.dumps(doc["map_proof"])) < 3000
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(doc))
    key_args = [a for k in _vkeys() for a in ("--key", k)]
    args = ["verify-current", str(path), *key_args, "--expect-status", "certified"]
    assert commands.main([*args, "--expect-version", "2", "--max-age", "3600"]) == 0
    assert "VERIFIED" in capsys.readouterr().out
    assert commands.main([*args, "--expect-version", "1"]) == 1
    assert "FAIL  expected version" in capsys.readouterr().out


def test_a_never_registered_id_gets_a_proof_of_absence(api, tenant):
    api.skill("someone else")
    tlog.seal(tenant)
    doc = _proof(api, str(uuid.uuid4()))
    assert doc["head"] is None and doc["version"] is None
    assert current.check(doc, _vkeys()).head is None
    assert _step(doc, expect_status="certified") == "expected status"


def test_a_superseded_version_presented_as_current_fails(api, tenant):
    skill = api.skill("moving")
    tlog.seal(tenant)
    old = _proof(api, skill)
    amended = api.patch(
        f"/skills/{skill}", {"description": "new", "amendment_reason": "x"}, **{"If-Match": '"v1"'}
    )
    assert amended.status_code == 200, amended.json
    tlog.seal(tenant)
    new = _proof(api, skill)
    # the new checkpoint and map, with the old head and version: the map proves otherwise
    forged = {**new, "head": old["head"], "version": old["version"]}
    assert _step(forged) == "map_proof"
    # the old proof, genuine when it was served, replayed later: too old, and not version 2
    later = datetime.now(UTC) + timedelta(seconds=120)
    assert _step(old, max_age=60, now=later) == "max_age"
    assert _step(old, expect_version=2) == "expected version"


def test_a_forged_absence_proof_for_an_existing_entity_fails(api, tenant):
    skill, other = api.skill("present"), api.skill("other")
    tlog.seal(tenant)
    doc = _proof(api, skill)
    absent = {**doc, "head": None, "version": None, "certificate": None}
    assert _step(absent) == "map_proof"
    # another key's leaf where this key's path ends: off its path, or not the root
    theirs = _proof(api, other)
    key = heads_map.entity_key(uuid.UUID(other))
    value = base64.b64decode(theirs["head"])
    leaf = {
        "key": base64.b64encode(key).decode(),
        "value_hash": base64.b64encode(sparse_merkle.value_hash(value)).decode(),
    }
    absent["map_proof"] = {"siblings": doc["map_proof"]["siblings"], "other_leaf": leaf}
    with pytest.raises(current.StepFailed) as caught:
        current.check(absent, _vkeys())
    assert caught.value.step == "map_proof"
    assert "other_leaf_off_path" in caught.value.message or "root_mismatch" in caught.value.message


def test_a_proof_against_another_tenants_checkpoint_fails(api, tenant, app, make_token):
    skill = api.skill("mine")
    tlog.seal(tenant)
    doc = _proof(api, skill)
    other = f"t-{uuid.uuid4().hex[:12]}"
    client = app.test_client()
    headers = {"Authorization": f"Bearer {make_token(other, 'author', 'reader')}"}
    created = client.post(
        "/registry/skills",
        json={"name": "theirs", "description": "d", "category": "technical"},
        headers=headers,
    )
    assert created.status_code == 201
    tlog.seal(other)
    theirs = client.get(f"/registry/skills/{uuid.uuid4()}/proof/current", headers=headers).json
    assert _step({**doc, "checkpoint": theirs["checkpoint"]}) == "tenant"
    swapped = {**doc, "checkpoint": theirs["checkpoint"], "tenant": other}
    assert _step(swapped) == "map_commit"


def test_a_map_node_rewritten_as_superuser_fails_the_served_proof(api, tenant, superuser):
    # the root's two child hashes, one of which is the sibling on the target's path
    skill = api.skill("target")
    api.skill("neighbour")
    tlog.seal(tenant)
    with superuser.begin() as conn:
        conn.execute(text(tampering.MAP_ROOT_CHILDREN_FLIPPED), {"t": tenant})
    assert _step(_proof(api, skill)) == "map_proof"


def test_a_status_rewritten_in_entity_heads_is_not_what_the_proof_serves(api, tenant, superuser):
    skill = api.skill("draft one")
    with superuser.begin() as conn:
        conn.execute(
            text("UPDATE entity_heads SET status = 'certified' WHERE tenant_id = :t"),
            {"t": tenant},
        )
    tlog.seal(tenant)  # the map is derived from the log, not from the rewritten projection
    doc = _proof(api, skill)
    assert current.check(doc, _vkeys()).head.status == "draft"
    assert _step(doc, expect_status="certified") == "expected status"


def test_the_map_commit_dropped_or_reordered_is_refused(api, tenant, superuser):
    skill = api.skill("one")
    api.skill("two")
    tlog.seal(tenant)
    doc = _proof(api, skill)
    size = doc["map_commit"]["index"] + 1
    # in the proof: a commit at another index, or another entry in its place
    moved = {**doc, "map_commit": {**doc["map_commit"], "index": size - 2}}
    assert _step(moved) == "map_commit"
    assert _step({**doc, "map_commit": doc["version"]}) == "map_commit"
    # in the database: the commit swapped with the entry before it
    with superuser.begin() as conn:
        conn.execute(text("SET session_replication_role = replica"))
        for a, b in ((size - 1, 10**9), (size - 2, size - 1), (10**9, size - 2)):
            conn.execute(
                text("UPDATE log_entries SET idx = :b WHERE tenant_id = :t AND idx = :a"),
                {"t": tenant, "a": a, "b": b},
            )
    response = api.get(f"/skills/{skill}/proof/current")
    assert response.status_code == 409
    assert response.json["finding"] == "map_invalid"


def test_a_proof_function_replaced_to_answer_garbage_is_refused_not_served(api, tenant, superuser):
    """An insider who replaces ``plant_current_proof`` so that it answers bytes that are
    not its packed reply (one byte; a header and nothing after it) gets a 409 problem
    naming the reply, never a 500 and never a document built from them."""
    skill = api.skill("one")
    tlog.seal(tenant)
    assert api.get(f"/skills/{skill}/proof/current").status_code == 200
    with superuser.connect() as conn:
        original = conn.execute(
            text("SELECT pg_get_functiondef(CAST('plant_current_proof' AS regproc))")
        ).scalar_one()
    header = original[: original.index("AS $function$")]
    try:
        for answer in ("'\\x00'", "'\\x" + "00" * 40 + "'"):
            with superuser.begin() as conn:
                conn.exec_driver_sql(f"{header}AS $f$ BEGIN RETURN {answer}; END $f$")
            response = api.get(f"/skills/{skill}/proof/current")
            assert response.status_code == 409, (answer, response.status_code)
            assert response.headers["Content-Type"] == "application/problem+json"
            assert "the proof's parts as the database sent them" in response.json["detail"]
    finally:
        with superuser.begin() as conn:
            conn.exec_driver_sql(original)
    assert api.get(f"/skills/{skill}/proof/current").status_code == 200
