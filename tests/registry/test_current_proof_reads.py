"""The one-statement read behind current-version proofs (``plant_current_proof``, migrations
0018 to 0032): one statement a proof, the very proofs the statement-by-statement reads give,
nothing of another tenant's, and stored nodes rewritten still failing the served proof."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import event, text

from shared import tlog
from shared.evidence import current as verifier
from shared.integrity import heads_map, merkle, sparse_merkle
from shared.registry import current
from shared.security.principal import Principal
from shared.storage import map_nodes, proof_reads, proof_reply, tree
from shared.storage.engine import database
from shared.tlog import keys


def _vkeys() -> list[str]:
    return list(keys.keyring().vkeys)


def _reader(tenant: str) -> Principal:
    return Principal("r", tenant, frozenset({"reader"}))


def _b64s(hashes: list[bytes]) -> list[str]:
    import base64

    return [base64.b64encode(h).decode() for h in hashes]


def test_a_proof_is_one_statement(api, tenant):
    skill = api.skill("counted")
    tlog.seal(tenant)
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    engine = database().engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        doc = current.current_proof(_reader(tenant), "skills", skill)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 1 and "plant_current_proof" in statements[0]
    assert verifier.check(doc, _vkeys()).head is not None


def test_the_parts_give_the_proofs_the_stored_nodes_give_read_one_by_one(api, tenant, certify):
    """At sizes of every parity (the right edge's subtrees differ), each part of each proof
    (certified, amended, draft, absent) equals the one computed from reads of the stored
    nodes one statement at a time."""
    skills = [api.skill(f"s{i}") for i in range(6)]
    certify("skills", skills[0])
    change = {"description": "new", "amendment_reason": "x"}
    amended = api.patch(f"/skills/{skills[1]}", change, **{"If-Match": '"v1"'})
    assert amended.status_code == 200, amended.json
    sizes = []
    for extra in range(3):
        tlog.seal(tenant)
        with database().transaction(tenant) as conn:
            sizes.append(tree.latest_checkpoint(conn).size)  # type: ignore[union-attr]
        for entity in [*skills, str(uuid.uuid4())]:
            doc = current.current_proof(_reader(tenant), "skills", entity)
            found = verifier.check(doc, _vkeys())
            with database().transaction(tenant) as conn:
                size = tree.latest_checkpoint(conn).size  # type: ignore[union-attr]
                reader = tree.DbNodes(conn)
                key = heads_map.entity_key(uuid.UUID(entity))
                map_proof = sparse_merkle.prove(map_nodes.DbMapNodes(conn), key)
                assert doc["map_proof"] == heads_map.proof_to_json(map_proof)
                assert doc["map_commit"]["proof"] == _b64s(
                    merkle.inclusion_proof(reader, size - 1, size)
                )
                if found.head is None:
                    assert entity not in skills
                    continue
                assert doc["version"]["proof"] == _b64s(
                    merkle.inclusion_proof(reader, found.head.log_index, size)
                )
                if found.head.certificate_index is not None:
                    assert doc["certificate"]["proof"] == _b64s(
                        merkle.inclusion_proof(reader, found.head.certificate_index, size)
                    )
        for i in range(extra + 1):
            api.skill(f"more {extra} {i}")
    assert {s % 2 for s in sizes} == {0, 1}
    assert verifier.check(
        current.current_proof(_reader(tenant), "skills", skills[0]), _vkeys(),
        expect_status="certified",
    )  # fmt: skip


def _other_tenant(app, make_token) -> tuple[str, str]:
    other = f"t-{uuid.uuid4().hex[:12]}"
    headers = {"Authorization": f"Bearer {make_token(other, 'author', 'reader')}"}
    created = app.test_client().post(
        "/registry/skills",
        json={"name": "theirs", "description": "d", "category": "technical"},
        headers=headers,
    )
    assert created.status_code == 201
    tlog.seal(other)
    return other, created.json["identity"]["id"]


def test_the_app_role_reads_nothing_of_another_tenant(api, tenant, app, make_token, superuser):
    mine = api.skill("mine")
    api.skill("mine too")
    tlog.seal(tenant)
    other, theirs = _other_tenant(app, make_token)
    with database().autocommit() as conn:
        role = conn.execute(text("SELECT current_user")).scalar_one()
        parts = proof_reads.current_parts(conn, tenant, theirs, None)
        filling = proof_reads.current_parts(conn, tenant, theirs, None, 0, 2)
        with superuser.connect() as su:
            their_size = su.execute(
                text("SELECT max(size) FROM checkpoints WHERE tenant_id = :t"), {"t": other}
            ).scalar_one()
            my_sizes = (
                su.execute(text("SELECT size FROM checkpoints WHERE tenant_id = :t"), {"t": tenant})
                .scalars()
                .all()
            )
            my_map = {
                bytes(r[0])
                for r in su.execute(
                    text("SELECT nodes FROM heads_map_strata WHERE tenant_id = :t"), {"t": tenant}
                )
            }
            my_log = {
                bytes(r[0])
                for r in su.execute(
                    text("SELECT hash FROM log_nodes WHERE tenant_id = :t"), {"t": tenant}
                )
            }
        # a size only the other tenant's log has, and a tenant with no checkpoint at all
        assert their_size not in my_sizes
        assert proof_reads.current_parts(conn, tenant, theirs, their_size) is None
        assert proof_reads.current_parts(conn, f"t-{uuid.uuid4().hex[:12]}", theirs, None) is None
    assert role == "plant_app"
    assert parts is not None and parts.version is None and parts.certificate is None
    assert parts.size in my_sizes
    assert set(parts.map_nodes.rows.values()) <= my_map and set(parts.log_nodes.values()) <= my_log
    # the strata sent whole to be held (migration 0032): this tenant's, none of the other's
    assert filling is not None and not filling.held
    held = proof_reply.held_strata(filling.whole_strata, 2).rows
    assert held and set(held.values()) <= my_map and set(filling.log_nodes.values()) <= my_log
    # served: the other tenant's entity is absent from this tenant's map, provably
    doc = current.current_proof(_reader(tenant), "skills", theirs)
    assert doc["head"] is None and verifier.check(doc, _vkeys()).tenant == tenant
    assert verifier.check(current.current_proof(_reader(tenant), "skills", mine), _vkeys()).head


def test_a_log_node_rewritten_as_superuser_fails_the_served_proof(api, tenant, superuser):
    skills = [api.skill(f"s{i}") for i in range(5)]
    tlog.seal(tenant)  # indices 0-4 the skills, 5 the commit; (0, 1) is only on 0's path
    with superuser.begin() as conn:
        conn.execute(text("SET session_replication_role = replica"))
        conn.execute(
            text(
                "UPDATE log_nodes SET hash = set_byte(hash, 0, get_byte(hash, 0) # 1) "
                "WHERE tenant_id = :t AND level = 0 AND idx = 1"
            ),
            {"t": tenant},
        )
    with pytest.raises(verifier.StepFailed) as caught:
        verifier.check(current.current_proof(_reader(tenant), "skills", skills[0]), _vkeys())
    assert caught.value.step == "version"
    assert verifier.check(current.current_proof(_reader(tenant), "skills", skills[4]), _vkeys())


def test_the_function_runs_as_its_caller_and_only_the_app_role_may_call_it(superuser):
    with superuser.connect() as conn:
        definer, public, app_role = conn.execute(
            text(
                "SELECT p.prosecdef, has_function_privilege('public', p.oid, 'EXECUTE'), "
                "has_function_privilege('plant_app', p.oid, 'EXECUTE') FROM pg_proc p "
                "WHERE p.proname = 'plant_current_proof'"
            )
        ).one()
    assert (definer, public, app_role) == (False, False, True)


def test_a_proof_read_from_strata_is_the_proof_of_the_map_computed_in_memory(superuser, tenant):
    """The map's strata (migration 0025) serve, for keys present or absent whose paths leave
    the top stratum, the very proof of the map the log's heads give, recomputed in memory."""
    from shared.tlog import map_commit
    from tests.support.seeding import seed_skills

    seed_skills(superuser, tenant, 0, 1500)
    tlog.seal(tenant)
    with superuser.connect() as su:
        ids = [
            str(i)
            for i in su.execute(
                text("SELECT entity_id FROM entity_heads WHERE tenant_id = :t LIMIT 40"),
                {"t": tenant},
            ).scalars()
        ]
    with database().transaction(tenant) as conn:
        size = tree.latest_checkpoint(conn).size  # type: ignore[union-attr]
        heads = map_commit.changed_heads(conn, 0, size - 1)
    memory = sparse_merkle.MemoryNodeStore()
    memory.update({h.key: heads_map.encode_head(h) for h in heads.values()})
    depths = set()
    for entity in [*ids, *(str(uuid.uuid4()) for _ in range(10))]:
        doc = current.current_proof(_reader(tenant), "skills", entity)
        expected = sparse_merkle.prove(memory, heads_map.entity_key(uuid.UUID(entity)))
        assert doc["map_proof"] == heads_map.proof_to_json(expected)
        depths.add(len(expected.siblings) // 8)
    assert depths >= {1}
