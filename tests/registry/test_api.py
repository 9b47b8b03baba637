"""Every registry endpoint's happy path and every error code, through the real app."""

from __future__ import annotations

import json

import pytest

from tests.support.reliability_table import record


def _problem(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data())
    assert response.mimetype == "application/problem+json"
    body = response.json
    assert body["status"] == status and body["type"].startswith("https://")
    return body


def test_create_returns_201_location_etag_and_the_seven_sections(api):
    response = api.post("/skills", {"name": "Python", "description": "d", "category": "technical"})
    assert response.status_code == 201
    doc = response.json
    assert response.headers["ETag"] == '"v1"'
    assert response.headers["Location"] == f"/registry/skills/{doc['identity']['id']}"
    assert set(doc) == {
        "receipt",
        "identity",
        "lifecycle",
        "versioning",
        "constitutional_alignment",
        "audit_trail",
        "metadata",
        "relationships",
    }
    assert doc["lifecycle"]["status"] == "draft"
    assert doc["versioning"] == {
        "version": 1,
        "previous_digest": None,
        "amendment_reason": "created",
        "amended_by": "alice",
    }
    assert doc["audit_trail"]["log_index"] == 0
    assert doc["audit_trail"]["digest"].startswith("sha256:")


def test_read_list_versions_and_version(api):
    skill = api.skill("Go")
    assert api.get(f"/skills/{skill}").json["identity"]["name"] == "Go"
    api.patch(
        f"/skills/{skill}", {"description": "e", "amendment_reason": "why"}, **{"If-Match": '"v1"'}
    )
    got = api.get(f"/skills/{skill}")
    assert got.headers["ETag"] == '"v2"'
    versions = api.get(f"/skills/{skill}/versions").json["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[1]["previous_digest"] == versions[0]["digest"]
    first = api.get(f"/skills/{skill}/versions/1")
    assert first.json["metadata"]["description"] == "d" and first.headers["ETag"] == '"v1"'
    assert api.get(f"/skills/{skill}/versions/3").status_code == 404


def test_list_filters_and_keyset_pagination(api):
    ids = [api.skill(f"s{i}", "technical" if i % 2 else "soft_skill") for i in range(5)]
    seen, cursor = [], None
    while True:
        url = "/skills?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(url).json
        seen += [d["identity"]["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids
    soft = api.get("/skills?category=soft_skill").json["items"]
    assert {d["identity"]["id"] for d in soft} == {ids[0], ids[2], ids[4]}
    assert api.get("/skills?status=certified").json["items"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("status=alive", "status"),
        ("cursor=!!", "cursor"),
        ("colour=red", "colour"),
    ],
)
def test_bad_list_parameters_get_422_naming_the_field(api, query, field):
    body = _problem(api.get(f"/skills?{query}"), 422)
    assert body["errors"][0]["field"] == field


@pytest.mark.parametrize(
    ("query", "field", "limit"),
    [
        ("limit=501", "limit", 500),
        ("limit=" + "9" * 3000, "limit", 500),
        ("category=" + "c" * 65, "category", 64),
    ],
)
def test_list_parameters_past_a_limit_get_422_naming_field_and_limit(api, query, field, limit):
    body = _problem(api.get(f"/skills?{query}"), 422)
    assert body["type"].endswith("/limit-exceeded")
    assert body["errors"][0]["field"] == field and body["limit"] == limit


def test_patch_without_if_match_is_428_and_stale_is_412(api):
    skill = api.skill("Rust")
    change = {"description": "e", "amendment_reason": "x"}
    _problem(api.patch(f"/skills/{skill}", change), 428)
    assert api.patch(f"/skills/{skill}", change, **{"If-Match": '"v1"'}).status_code == 200
    body = _problem(api.patch(f"/skills/{skill}", change, **{"If-Match": '"v1"'}), 412)
    assert body["current_etag"] == '"v2"'


def test_status_changes_and_only_certification_sets_certified(api):
    skill = api.skill("Zig")
    submitted = api.post(
        f"/skills/{skill}/status", {"status": "pending_certification", "reason": "ready"}
    )
    assert (
        submitted.status_code == 200
        and submitted.json["lifecycle"]["status"] == "pending_certification"
    )
    body = _problem(
        api.post(f"/skills/{skill}/status", {"status": "certified", "reason": "x"}), 422
    )
    assert body["violations"][0]["rule"] == "LIFECYCLE-01"
    _problem(api.post(f"/skills/{skill}/status", {"status": "suspended", "reason": "x"}), 409)
    deprecated = api.post(f"/skills/{skill}/status", {"status": "deprecated", "reason": "old"})
    assert deprecated.json["lifecycle"]["status"] == "deprecated"
    _problem(
        api.patch(
            f"/skills/{skill}",
            {"description": "x", "amendment_reason": "y"},
            **{"If-Match": '"v3"'},
        ),
        409,
    )


def test_agent_team_assignment(api, certify):
    skill = api.skill("Support")
    certify("skills", skill)
    industry = api.post("/industries", {"name": "Retail", "description": "d"}).json["identity"][
        "id"
    ]
    role = api.post(
        "/job-roles",
        {
            "name": "Agent",
            "description": "d",
            "required_skills": [skill],
            "seniority_level": "junior",
        },
    ).json["identity"]["id"]
    agent = api.post(
        "/agents", {"name": "A", "skill_id": skill, "job_role_id": role, "industry_id": industry}
    )
    assert agent.status_code == 201, agent.json
    agent_id = agent.json["identity"]["id"]
    team = api.post("/teams", {"name": "T", "description": "d", "job_role_id": role}).json
    assigned = api.post(f"/agents/{agent_id}/team", {"team_id": team["identity"]["id"]})
    assert assigned.status_code == 200
    assert assigned.json["relationships"]["team_id"] == team["identity"]["id"]
    assert assigned.headers["ETag"] == '"v2"'


def test_no_token_bad_token_and_wrong_role(app, api, tenant, make_token):
    client = app.test_client()
    _problem(client.get("/registry/skills"), 401)
    _problem(client.get("/registry/skills", headers={"Authorization": "Bearer nonsense"}), 401)
    _problem(client.get("/registry/skills", headers={"Authorization": "Basic abc"}), 401)
    reader = {"Authorization": f"Bearer {make_token(tenant, 'reader')}"}
    body = {"name": "x", "description": "d", "category": "technical"}
    _problem(client.post("/registry/skills", json=body, headers=reader), 403)
    assert client.get("/registry/skills", headers=reader).status_code == 200


def test_unknown_kind_id_and_route_are_404(api):
    _problem(api.get("/gadgets"), 404)
    malformed = _problem(api.get("/skills/not-a-uuid"), 422)  # cannot name anything: not 404
    assert malformed["errors"] == [{"field": "id", "message": "must be a UUID"}]
    _problem(api.get("/skills/00000000-0000-4000-8000-000000000000"), 404)
    skill = api.skill("Kind")
    _problem(api.get(f"/industries/{skill}"), 404)  # a skill is not an industry


def test_malformed_json_is_400_not_json_is_415_large_is_413(api, request):
    headers = {**api.headers, "Content-Type": "application/json"}
    _problem(api.client.post("/registry/skills", data="{bad", headers=headers), 400)
    _problem(api.client.post("/registry/skills", data='{"a":1,"a":2}', headers=headers), 400)
    _problem(api.client.post("/registry/skills", data="[NaN]", headers=headers), 400)
    deep = _problem(api.client.post("/registry/skills", data="[" * 50_000, headers=headers), 422)
    record(request.node, "JSON nested 50,000 levels deep", 1, "422 naming the limit (32), no crash")
    assert deep["limit"] == 32
    assert "nested deeper than 32" in deep["detail"]
    _problem(
        api.client.post(
            "/registry/skills",
            data="name=x",
            headers={**api.headers, "Content-Type": "application/x-www-form-urlencoded"},
        ),
        415,
    )
    big = json.dumps(
        {"name": "x", "description": "d" * (1024 * 1024 + 10), "category": "technical"}
    )
    _problem(api.client.post("/registry/skills", data=big, headers=headers), 413)


def test_healthz_checks_the_database(app, monkeypatch):
    from shared.storage import engine

    assert app.test_client().get("/registry/healthz").status_code == 200
    dead = engine.Database(engine.local_engine("postgresql://postgres@127.0.0.1:1/x", 1, 1000))
    monkeypatch.setattr(engine, "_database", dead)
    response = app.test_client().get("/registry/healthz")
    _problem(response, 503)
    assert response.headers["Retry-After"]


def test_plant_token_cli_prints_a_token_the_server_accepts(app, tenant, capsys):
    from shared import cli

    assert (
        cli.main(["token", "--sub", "bob", "--role", "reader", "--tenant", tenant, "--ttl", "60"])
        == 0
    )
    token = capsys.readouterr().out.strip()
    response = app.test_client().get(
        "/registry/skills", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert cli.main(["token", "--sub", "bob", "--role", "reader", "--tenant", "BAD TENANT"]) == 2


def test_plant_migrate_cli_runs(capsys):
    from shared import cli

    assert cli.main(["migrate"]) == 0
    assert "migrations applied" in capsys.readouterr().out
