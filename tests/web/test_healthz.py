"""``GET /<function>/healthz``: plain liveness for anyone; ``?details=1`` for auditors and
admins (issue 23, item 7)."""

from __future__ import annotations

import pytest
from alembic.script import ScriptDirectory

from shared.storage import migrate
from tests.support.reliability_table import record

FUNCTIONS = ("registry", "log", "certify", "audit", "export")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_plain_healthz_is_unchanged_and_needs_no_token(clients, function):
    response = clients[function].get(f"/{function}/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_details_for_an_auditor(clients, bearer, tenant, function):
    from shared.tlog import keys

    auditor = bearer(tenant, "auditor")
    author = bearer(tenant, "author", "reader")
    registry = clients["registry"]
    skill = {"name": "Health", "description": "d", "category": "technical"}
    assert registry.post("/registry/skills", json=skill, headers=author).status_code == 201
    response = clients[function].get(f"/{function}/healthz?details=1", headers=auditor)
    assert response.status_code == 200, response.json
    body = response.json
    assert body["status"] == "ok" and body["tenant"] == tenant
    assert body["database"]["reachable"] is True
    assert 0 <= body["database"]["round_trip_ms"] < 60_000
    assert [body["migration_revision"]] == ScriptDirectory.from_config(
        migrate.alembic_config()
    ).get_heads()
    assert body["keys"] == keys.status()
    assert body["log_size"] == 1
    assert body["checkpoint"] is None and body["audit"] is None
    # after a seal and an audit, their state is there
    assert clients["log"].post("/log/seal", headers=auditor).status_code in (200, 201)
    run = clients["audit"].post("/audit/runs", json={"mode": "full"}, headers=auditor)
    assert run.status_code in (200, 201, 202), run.json
    body = clients[function].get(f"/{function}/healthz?details=1", headers=auditor).json
    # the skill and the map commit the seal appended; the audit's report (docs/formats.md) is
    # appended after its seal: the next seal covers it
    assert body["checkpoint"]["size"] == 2 and body["checkpoint"]["unsealed_entries"] == 1
    assert 0 <= body["checkpoint"]["age_seconds"] < 600
    assert body["checkpoint"]["created_at"].endswith("Z")
    assert body["audit"]["id"] == run.json["id"]
    assert body["audit"]["mode"] == "full" and body["audit"]["status"] == "completed"
    assert body["audit"]["finding_count"] == 0 and body["audit"]["started_at"].endswith("Z")


def test_details_for_an_admin_of_another_tenant_show_that_tenant(clients, bearer, tenant):
    body = (
        clients["registry"]
        .get("/registry/healthz?details=1", headers=bearer("t-elsewhere", "admin"))
        .json
    )
    assert body["tenant"] == "t-elsewhere"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_details_need_a_token_and_the_auditor_role(request, clients, bearer, tenant, function):
    client = clients[function]
    anonymous = client.get(f"/{function}/healthz?details=1")
    assert anonymous.status_code == 401 and anonymous.mimetype == "application/problem+json"
    for roles in (("reader",), ("author", "reader"), ("certifier",)):
        denied = client.get(f"/{function}/healthz?details=1", headers=bearer(tenant, *roles))
        assert denied.status_code == 403, roles
        assert denied.mimetype == "application/problem+json"
        assert "details" not in denied.json and "migration_revision" not in denied.json
    bad = client.get(f"/{function}/healthz?details=yes")
    assert bad.status_code == 422 and bad.json["errors"][0]["field"] == "details"
    record(
        request.node,
        f"healthz details without a token or as a non-auditor (/{function})",
        4,
        "401 / 403 problem+json, nothing disclosed",
    )
