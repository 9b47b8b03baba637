"""Batch create: all or nothing, every violation named by item, one log move for all."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from shared import audit
from shared.errors import Conflict, PayloadTooLarge, ValidationFailed
from shared.registry import batches, reads, writes
from shared.security.principal import Principal


def _author(tenant: str) -> Principal:
    return Principal("alice", tenant, frozenset({"author", "reader"}))


def _skills(count: int, prefix: str = "skill") -> list[dict]:
    return [
        {"name": f"{prefix} {i}", "description": "d", "category": "technical"} for i in range(count)
    ]


def _log(superuser, tenant: str) -> list[tuple]:
    with superuser.connect() as conn:
        return conn.execute(
            text(
                "SELECT idx, CAST(entity_id AS text), version FROM log_entries "
                "WHERE tenant_id = :t ORDER BY idx"
            ),
            {"t": tenant},
        ).all()


def test_a_batch_lands_in_order_with_contiguous_indices(database_url, tenant, superuser):
    author = _author(tenant)
    writes.create(author, "skills", _skills(1, "before")[0], "r")
    made = batches.create_batch(author, "skills", _skills(300), "r")["items"]
    assert [m["log_index"] for m in made] == list(range(1, 301))
    log = _log(superuser, tenant)
    assert [(r[0], r[1], r[2]) for r in log[1:]] == [(m["log_index"], m["id"], 1) for m in made]
    doc = reads.get(author, "skills", made[42]["id"])
    assert doc.body["identity"]["name"] == "skill 42"
    assert doc.body["audit_trail"]["digest"] == made[42]["digest"]
    auditor = Principal("audrey", tenant, frozenset({"auditor"}))
    run, _ = audit.run(auditor, {"mode": "full"})
    assert run["findings"] == []


def test_every_bad_item_is_named_and_nothing_is_written(database_url, tenant, superuser):
    author = _author(tenant)
    bodies = _skills(5)
    bodies[1] = {"name": "", "description": "d", "category": "technical"}
    bodies[3]["category"] = "nonsense"
    bodies[4]["name"] = "SKILL 0"  # same unique key as item 0
    with pytest.raises(ValidationFailed) as caught:
        batches.create_batch(author, "skills", bodies, "r")
    fields = {v["field"] for v in caught.value.extensions["violations"]}
    assert {"items[1].name", "items[3].category", "items[4].name"} <= fields
    assert _log(superuser, tenant) == []


def test_a_key_already_live_is_409_and_nothing_is_written(database_url, tenant, superuser):
    author = _author(tenant)
    first = writes.create(author, "skills", _skills(1)[0], "r")
    with pytest.raises(Conflict) as caught:
        batches.create_batch(author, "skills", _skills(3), "r")  # "skill 0" again
    assert caught.value.extensions["existing_id"] == first.body["identity"]["id"]
    assert len(_log(superuser, tenant)) == 1


def test_batch_limits(database_url, tenant):
    author = _author(tenant)
    with pytest.raises(ValidationFailed):
        batches.create_batch(author, "skills", [], "r")
    with pytest.raises(ValidationFailed):
        batches.create_batch(author, "skills", {"name": "x"}, "r")
    with pytest.raises(PayloadTooLarge):
        batches.create_batch(author, "skills", [{}] * (batches.MAX_BATCH + 1), "r")


def test_a_batch_referencing_a_dead_skill_is_refused(database_url, tenant, certify):
    author = _author(tenant)
    skill = writes.create(author, "skills", _skills(1)[0], "r").body["identity"]["id"]
    certify("skills", skill)
    roles = [
        {
            "name": f"role {i}",
            "description": "d",
            "seniority_level": "mid",
            "required_skills": [skill],
        }
        for i in range(3)
    ]
    made = batches.create_batch(author, "job-roles", roles, "r")["items"]
    assert len(made) == 3
    current = reads.get(author, "skills", skill)
    writes.change_status(
        author,
        "skills",
        skill,
        {"status": "deprecated", "reason": "old"},
        f'"v{current.version}"',
        "r",
    )
    with pytest.raises(ValidationFailed) as caught:
        batches.create_batch(author, "job-roles", roles, "r")
    fields = {v["field"] for v in caught.value.extensions["violations"]}
    assert {"items[0].required_skills[0]", "items[2].required_skills[0]"} <= fields, fields


def test_the_batch_route(api, make_token, tenant):
    response = api.post("/skills/batch", {"items": _skills(3)})
    assert response.status_code == 201, response.json
    made = response.json["items"]
    assert [m["version"] for m in made] == [1, 1, 1]
    got = api.get(f"/skills/{made[1]['id']}")
    assert got.status_code == 200 and got.json["identity"]["name"] == "skill 1"

    bad = api.post("/skills/batch", _skills(2))  # a bare list, not {"items": [...]}
    assert bad.status_code == 422
    assert bad.headers["Content-Type"] == "application/problem+json"
    assert [v["field"] for v in bad.json["violations"]] == ["items"]

    named = api.post("/skills/batch", {"items": [{"name": "x", "category": "technical"}]})
    assert named.status_code == 422
    assert "items[0].description" in {v["field"] for v in named.json["violations"]}

    reader = make_token(tenant, "reader", subject="rita")
    denied = api.client.post(
        "/registry/skills/batch",
        json={"items": _skills(1, "denied")},
        headers={"Authorization": f"Bearer {reader}"},
    )
    assert denied.status_code == 403
    huge = api.post("/skills/batch", {"items": _skills(12_000, "x" * 60)})
    assert huge.status_code == 413


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 7 items, so a batch of tens crosses several COPY-and-append steps."""
    from shared.storage import ledger

    monkeypatch.setattr(ledger, "CHUNK", 7)


def test_a_batch_of_many_chunks_lands_whole(database_url, tenant, superuser, small_chunks):
    author = _author(tenant)
    made = batches.create_batch(author, "skills", _skills(50), "r")["items"]
    log = _log(superuser, tenant)
    assert [(r[0], r[1]) for r in log] == [(m["log_index"], m["id"]) for m in made]
    assert [r[0] for r in log] == list(range(50))
    with superuser.connect() as conn:
        heads = conn.execute(
            text("SELECT count(*), min(first_index), max(log_index) FROM entity_heads "
                 "WHERE tenant_id = :t"),
            {"t": tenant},
        ).one()  # fmt: skip
    assert tuple(heads) == (50, 0, 49)
    run, _ = audit.run(Principal("audrey", tenant, frozenset({"auditor"})), {"mode": "full"})
    assert run["findings"] == []


def test_a_taken_key_in_a_late_chunk_writes_nothing_of_the_earlier_ones(
    database_url, tenant, superuser, small_chunks
):
    author = _author(tenant)
    taken = writes.create(author, "skills", _skills(1, "late")[0], "r")
    bodies = _skills(30) + _skills(1, "late")  # the last chunk holds the taken name
    threads = threading.active_count()
    with pytest.raises(Conflict) as caught:
        batches.create_batch(author, "skills", bodies, "r")
    assert threading.active_count() == threads  # the encoding helper stopped with it
    assert caught.value.extensions["existing_id"] == taken.body["identity"]["id"]
    assert len(_log(superuser, tenant)) == 1
    with superuser.connect() as conn:
        size = conn.execute(
            text("SELECT size FROM log_heads WHERE tenant_id = :t"), {"t": tenant}
        ).scalar_one()
    assert size == 1  # the counter's move rolled back with the rest
    made = batches.create_batch(author, "skills", _skills(30), "r")["items"]  # and the log goes on
    assert made[0]["log_index"] == 1


def test_an_encoding_failure_mid_batch_writes_nothing(
    database_url, tenant, superuser, small_chunks, monkeypatch
):
    from shared.registry import documents

    real, calls = documents.encode, []

    def failing(doc):
        calls.append(1)
        if len(calls) == 20:  # in the third chunk, after two were appended
            raise RuntimeError("encoder broke")
        return real(doc)

    monkeypatch.setattr(documents, "encode", failing)
    with pytest.raises(RuntimeError, match="encoder broke"):
        batches.create_batch(_author(tenant), "skills", _skills(40), "r")
    assert _log(superuser, tenant) == []


def test_a_batch_needs_no_temporary_privilege_from_public(database_url, tenant, superuser):
    """A hardened database revokes TEMPORARY from PUBLIC: the application role's own grant
    (migration 0009) still lets a batch stage its items."""
    from shared.storage.engine import database

    with superuser.connect() as conn:
        name = conn.execute(text("SELECT current_database()")).scalar_one()

    def as_superuser(statement: str) -> None:
        with superuser.begin() as conn:
            conn.execute(text(statement))

    as_superuser(f'REVOKE TEMPORARY ON DATABASE "{name}" FROM PUBLIC')
    try:
        database().engine.dispose()  # the right is checked when a session first needs it
        made = batches.create_batch(_author(tenant), "skills", _skills(3), "r")["items"]
        assert [m["log_index"] for m in made] == [0, 1, 2]
    finally:
        as_superuser(f'GRANT TEMPORARY ON DATABASE "{name}" TO PUBLIC')


def test_a_batch_beyond_the_process_cap_gets_503_before_its_body_is_read(
    request, app, make_token, superuser, monkeypatch
):
    """Tenant X's batch is running (held inside its write). X's next batch and tenant Y's
    batch are refused at once with 503 + Retry-After, before their bodies are read (a body
    that is not even JSON gets the 503, not a 400), and nothing of them is written; Y's
    single create is written meanwhile; once X's batch is done, Y's batch runs."""
    from concurrent.futures import ThreadPoolExecutor

    from shared.storage import ledger
    from tests.support.reliability_table import record

    tenant_x, tenant_y = (f"t-{uuid.uuid4().hex[:10]}" for _ in range(2))
    x, y = (make_token(t, "author", "reader") for t in (tenant_x, tenant_y))
    entered, release = threading.Event(), threading.Event()
    write = ledger.create_versions

    def held(*args, **kwargs):
        entered.set()
        assert release.wait(5), "the running batch was never let go"
        return write(*args, **kwargs)

    def post(token: str, path: str, body: Any = None, raw: bytes | None = None):
        data = raw if raw is not None else json.dumps(body)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        return app.test_client().post(f"/registry{path}", data=data, headers=headers)

    monkeypatch.setattr(ledger, "create_versions", held)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(post, x, "/skills/batch", {"items": _skills(3, "x")})
        assert entered.wait(10)
        try:
            again = post(x, "/skills/batch", raw=b'{"items": [not json')
            other = post(y, "/skills/batch", {"items": _skills(2, "y")})
            single = post(y, "/skills", _skills(1, "single")[0])
        finally:
            release.set()
        first = running.result(timeout=10)
    assert first.status_code == 201, first.json
    for refused in (again, other):
        assert refused.status_code == 503, refused.json
        assert refused.mimetype == "application/problem+json"
        assert refused.json["type"].endswith("service-unavailable")
        assert refused.headers["Retry-After"]
    assert single.status_code == 201, single.json
    assert len(_log(superuser, tenant_x)) == 3
    assert len(_log(superuser, tenant_y)) == 1  # the single create only
    after = post(y, "/skills/batch", {"items": _skills(2, "y")})
    assert after.status_code == 201, after.json
    assert len(_log(superuser, tenant_y)) == 3
    record(
        request.node,
        "tenant fairness: a batch while the process's batch slot is taken",
        2,
        "503 + Retry-After before the body is read, nothing written; single creates go on",
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [("0", "PLANT_MAX_BATCHES must be at least 1"), ("one", "must be an integer")],
)
def test_the_batch_cap_is_a_positive_integer(value, message):
    from shared import config
    from shared.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=message):
        config.load({"PLANT_MAX_BATCHES": value})
    assert config.load({}).max_batches == 1
