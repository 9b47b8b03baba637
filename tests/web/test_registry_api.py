"""Registry edges a client can reach: every answer is the documented 4xx as problem+json,
never a 500; reader and author roles; the status and team endpoints' own errors; other
tenants' versions and proofs. (Main happy paths and error codes: tests/registry/test_api.py.)
"""

from __future__ import annotations

import uuid

import pytest

PATCH = {"description": "e", "amendment_reason": "why"}


def _problem(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data()[:500])
    assert response.mimetype == "application/problem+json"
    body = response.json
    assert body["status"] == status and body["type"].startswith("https://")
    return body


def _violations(response) -> set[tuple[str, str]]:
    body = _problem(response, 422)
    assert all(v["message"] for v in body["violations"])
    return {(v["rule"], v["field"]) for v in body["violations"]}


@pytest.fixture
def agent(create, certified_skill) -> dict[str, str]:
    """A live agent's id and job role (its skill certified and required by the role)."""
    skill_id = certified_skill("Support")
    industry = create("industries", name="Retail", description="d")["identity"]["id"]
    role = create(
        "job-roles",
        name="Agent",
        description="d",
        required_skills=[skill_id],
        seniority_level="junior",
    )["identity"]["id"]
    doc = create("agents", name="A", skill_id=skill_id, job_role_id=role, industry_id=industry)
    return {"id": doc["identity"]["id"], "job_role_id": role}


def _name_refused(response) -> None:
    rules = [rule for rule, field in _violations(response) if field == "name"]
    assert rules and rules[0].startswith("INPUT-"), rules


# ---- never a 500 on client input ---------------------------------------------------------


@pytest.mark.parametrize("limit", ["%C2%B2", "%D9%A1", "%EF%BC%95", "1e2", "-1", "+5"])
def test_a_limit_that_is_not_ascii_digits_gets_422(registry_client, reader, limit):
    # U+00B2 (superscript two) and U+0661 (Arabic-Indic one) pass str.isdigit(): the first
    # then crashed int() (a 500) and the second was read as 1.
    body = _problem(registry_client.get(f"/registry/skills?limit={limit}", headers=reader), 422)
    assert body["errors"][0]["field"] == "limit"


@pytest.mark.parametrize("version", ["%C2%B2", "%D9%A1", "-1", "0", "1.0"])
def test_a_version_number_that_is_not_ascii_digits_gets_422_naming_it(
    registry_client, author, skill, version
):
    skill_id = skill("versions")
    for suffix in ("", "/proof"):
        response = registry_client.get(
            f"/registry/skills/{skill_id}/versions/{version}{suffix}", headers=author
        )
        assert _problem(response, 422)["errors"][0]["field"] == "version"


@pytest.mark.parametrize("version", ["2", "9" * 10, "9" * 12])
def test_a_version_the_entity_does_not_have_gets_404(registry_client, author, skill, version):
    skill_id = skill("versions")
    for suffix in ("", "/proof"):
        response = registry_client.get(
            f"/registry/skills/{skill_id}/versions/{version}{suffix}", headers=author
        )
        assert _problem(response, 404)["type"].endswith("/not-found")


@pytest.mark.parametrize("etag", ['"v\u00b2"', '"v1\u00b2"', '"v-1"', '"v"', "v1 v2", '"v1", "v2"'])
def test_an_if_match_that_is_not_v_and_ascii_digits_gets_412(registry_client, author, skill, etag):
    skill_id = skill("etags")
    response = registry_client.patch(
        f"/registry/skills/{skill_id}", json=PATCH, headers={**author, "If-Match": etag}
    )
    _problem(response, 412)


def test_a_nul_in_the_category_filter_gets_422(registry_client, reader):
    body = _problem(registry_client.get("/registry/skills?category=%00", headers=reader), 422)
    assert body["errors"][0]["field"] == "category"


@pytest.mark.parametrize("slug", ["skills", "industries"])
def test_a_nul_in_a_name_gets_422_naming_the_field(registry_client, author, slug):
    body = {"name": "a\u0000b", "description": "d", "category": "technical"}
    if slug == "industries":
        del body["category"]
    response = registry_client.post(f"/registry/{slug}", json=body, headers=author)
    _name_refused(response)


def test_amending_a_name_to_contain_nul_gets_422(registry_client, author, skill):
    skill_id = skill("clean")
    response = registry_client.patch(
        f"/registry/skills/{skill_id}",
        json={"name": "dirty\u0000", "amendment_reason": "x"},
        headers={**author, "If-Match": '"v1"'},
    )
    _name_refused(response)
    assert (
        registry_client.get(f"/registry/skills/{skill_id}", headers=author).headers["ETag"]
        == '"v1"'
    )


def test_a_json_body_that_is_not_an_object_gets_422(registry_client, author):
    for raw in ("null", "[1]", '"text"', "3"):
        response = registry_client.post(
            "/registry/skills",
            data=raw,
            headers={**author, "Content-Type": "application/json"},
        )
        assert _violations(response) == {("INPUT-02", "")}


def test_a_utf8_bom_or_latin1_body_gets_400(registry_client, author):
    headers = {**author, "Content-Type": "application/json"}
    for raw in (b'\xef\xbb\xbf{"name":"x"}', b'{"name":"\xe9"}', b""):
        _problem(registry_client.post("/registry/skills", data=raw, headers=headers), 400)


def test_json_with_a_charset_or_a_plus_json_type_is_accepted(registry_client, author):
    for n, mimetype in enumerate(("application/json; charset=utf-8", "application/merge+json")):
        response = registry_client.post(
            "/registry/skills",
            data=f'{{"name":"cs{n}","description":"d","category":"technical"}}',
            headers={**author, "Content-Type": mimetype},
        )
        assert response.status_code == 201, response.json


def test_a_body_without_a_content_type_gets_415(registry_client, author):
    _problem(registry_client.post("/registry/skills", data=b"{}", headers=author), 415)


def test_no_route_deletes_an_entity_405_names_what_is_allowed(registry_client, author, skill):
    skill_id = skill("kept")
    response = registry_client.delete(f"/registry/skills/{skill_id}", headers=author)
    _problem(response, 405)
    assert response.headers["Allow"] == "GET, PATCH"
    assert registry_client.get(f"/registry/skills/{skill_id}", headers=author).status_code == 200


# ---- roles ---------------------------------------------------------------------------------


def test_the_reader_role_reads_every_read_endpoint(registry_client, reader, skill):
    skill_id = skill("readable")
    for path in (
        "/registry/skills",
        f"/registry/skills/{skill_id}",
        f"/registry/skills/{skill_id}/versions",
        f"/registry/skills/{skill_id}/versions/1",
    ):
        response = registry_client.get(path, headers=reader)
        assert response.status_code == 200, (path, response.json)
        assert response.mimetype == "application/json"


def test_the_reader_role_cannot_amend_change_status_or_assign_a_team(
    registry_client, reader, skill
):
    skill_id = skill("guarded")
    _problem(
        registry_client.patch(
            f"/registry/skills/{skill_id}", json=PATCH, headers={**reader, "If-Match": '"v1"'}
        ),
        403,
    )
    _problem(
        registry_client.post(
            f"/registry/skills/{skill_id}/status",
            json={"status": "deprecated", "reason": "x"},
            headers=reader,
        ),
        403,
    )
    _problem(
        registry_client.post(
            f"/registry/agents/{uuid.uuid4()}/team", json={"team_id": None}, headers=reader
        ),
        403,
    )


# ---- status endpoint -------------------------------------------------------------------------


def test_a_status_body_gets_every_violation_listed_at_once(registry_client, author, skill):
    skill_id = skill("status")
    response = registry_client.post(
        f"/registry/skills/{skill_id}/status", json={"status": "alive", "colour": 1}, headers=author
    )
    assert _violations(response) == {
        ("INPUT-02", "status"),
        ("INPUT-01", "reason"),
        ("INPUT-04", "colour"),
    }
    missing = registry_client.post(
        f"/registry/skills/{skill_id}/status", json={"reason": "r" * 1001}, headers=author
    )
    assert _violations(missing) == {("INPUT-01", "status"), ("INPUT-03", "reason")}


def test_a_status_change_with_a_stale_if_match_gets_412_and_a_current_one_200(
    registry_client, author, skill
):
    skill_id = skill("status-etag")
    change = {"status": "pending_certification", "reason": "ready"}
    url = f"/registry/skills/{skill_id}/status"
    body = _problem(
        registry_client.post(url, json=change, headers={**author, "If-Match": '"v2"'}), 412
    )
    assert body["current_etag"] == '"v1"'
    ok = registry_client.post(url, json=change, headers={**author, "If-Match": '"v1"'})
    assert ok.status_code == 200 and ok.headers["ETag"] == '"v2"'


def test_amending_a_certified_entity_returns_it_to_pending_certification(
    registry_client, author, certified_skill
):
    skill_id = certified_skill("Certified")
    current = registry_client.get(f"/registry/skills/{skill_id}", headers=author)
    assert current.json["lifecycle"]["status"] == "certified"
    amended = registry_client.patch(
        f"/registry/skills/{skill_id}",
        json=PATCH,
        headers={**author, "If-Match": current.headers["ETag"]},
    )
    assert amended.status_code == 200, amended.json
    assert amended.json["lifecycle"]["status"] == "pending_certification"


# ---- team assignment -------------------------------------------------------------------------


def test_team_assignment_to_a_non_agent_or_unknown_id_is_404(registry_client, author, skill):
    skill_id = skill("not an agent")
    for target in (skill_id, str(uuid.uuid4())):
        response = registry_client.post(
            f"/registry/agents/{target}/team", json={"team_id": None}, headers=author
        )
        _problem(response, 404)
    malformed = registry_client.post(
        "/registry/agents/not-a-uuid/team", json={"team_id": None}, headers=author
    )
    assert _problem(malformed, 422)["errors"] == [{"field": "id", "message": "must be a UUID"}]


@pytest.mark.parametrize("body", [{}, {"team": None}, {"team_id": None, "x": 1}, [], "team"])
def test_team_assignment_body_must_hold_team_id(registry_client, author, body):
    response = registry_client.post(
        f"/registry/agents/{uuid.uuid4()}/team", json=body, headers=author
    )
    assert _violations(response) == {("INPUT-01", "team_id")}


def test_team_assignment_to_an_unknown_team_or_a_non_team_is_422(registry_client, author, agent):
    url = f"/registry/agents/{agent['id']}/team"
    unknown = registry_client.post(url, json={"team_id": str(uuid.uuid4())}, headers=author)
    assert _violations(unknown) == {("L1-REF-01", "team_id")}
    not_a_team = registry_client.post(url, json={"team_id": agent["job_role_id"]}, headers=author)
    assert _violations(not_a_team) == {("L1-REF-01", "team_id")}
    malformed = registry_client.post(url, json={"team_id": "team-1"}, headers=author)
    assert _violations(malformed) == {("INPUT-05", "team_id")}


def test_team_assignment_with_a_stale_if_match_is_412(registry_client, author, agent, create):
    team = create("teams", name="T", description="d", job_role_id=agent["job_role_id"])
    url = f"/registry/agents/{agent['id']}/team"
    body = {"team_id": team["identity"]["id"]}
    _problem(registry_client.post(url, json=body, headers={**author, "If-Match": '"v9"'}), 412)
    ok = registry_client.post(url, json=body, headers={**author, "If-Match": '"v1"'})
    assert ok.status_code == 200 and ok.json["relationships"]["team_id"] == body["team_id"]
    removed = registry_client.post(url, json={"team_id": None}, headers=author)
    assert removed.status_code == 200 and removed.headers["ETag"] == '"v3"'
    assert removed.json["relationships"]["team_id"] is None


# ---- other tenants -------------------------------------------------------------------------


def test_another_tenant_gets_404_for_a_version_its_proof_and_a_team_assignment(
    registry_client, bearer, tenant, agent
):
    other = bearer(tenant + "-b", "author", "reader")
    agent_id = agent["id"]
    for path in (
        f"/registry/agents/{agent_id}/versions/1",
        f"/registry/agents/{agent_id}/versions/1/proof",
    ):
        _problem(registry_client.get(path, headers=other), 404)
    assigned = registry_client.post(
        f"/registry/agents/{agent_id}/team", json={"team_id": None}, headers=other
    )
    _problem(assigned, 404)
