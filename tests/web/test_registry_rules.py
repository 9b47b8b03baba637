"""Rules tests/registry/test_rules.py leaves out: uniqueness on rename and under a race,
references to unknown or wrong-kind entities, and the list and attribute limits."""

from __future__ import annotations

import threading
import uuid

import pytest


def _violations(response) -> set[tuple[str, str]]:
    assert response.status_code == 422, (response.status_code, response.json)
    assert response.mimetype == "application/problem+json"
    assert all(v["message"] for v in response.json["violations"])
    return {(v["rule"], v["field"]) for v in response.json["violations"]}


def test_renaming_onto_a_live_skill_name_is_409_ignoring_case_and_spaces(
    registry_client, author, skill
):
    taken = skill("Python")
    other = skill("Perl")
    renamed = registry_client.patch(
        f"/registry/skills/{other}",
        json={"name": "  pYTHON ", "amendment_reason": "rename"},
        headers={**author, "If-Match": '"v1"'},
    )
    assert renamed.status_code == 409
    assert renamed.mimetype == "application/problem+json"
    assert renamed.json["violations"][0]["rule"] == "L1-SKILL-02"
    assert renamed.json["existing_id"] == taken
    # An entity never collides with itself: re-casing its own name is an ordinary amendment.
    own = registry_client.patch(
        f"/registry/skills/{taken}",
        json={"name": "PYTHON", "amendment_reason": "case"},
        headers={**author, "If-Match": '"v1"'},
    )
    assert own.status_code == 200 and own.json["identity"]["name"] == "PYTHON"


def test_racing_creates_of_one_name_leave_exactly_one_live_skill(registry_client, author, skill):
    skill("warm-up")  # the tenant's log head exists before the race
    barrier = threading.Barrier(10)
    answers: list[tuple[int, str]] = []

    def create(n: int) -> None:
        body = {"name": "Same" if n % 2 else "same", "description": "d", "category": "technical"}
        barrier.wait()
        response = registry_client.application.test_client().post(
            "/registry/skills", json=body, headers=author
        )
        answers.append((response.status_code, response.mimetype))

    threads = [threading.Thread(target=create, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [(201, "application/json")] + [(409, "application/problem+json")] * 9
    listed = registry_client.get("/registry/skills?limit=500", headers=author).json["items"]
    assert sorted(d["identity"]["name"].lower() for d in listed) == ["same", "warm-up"]


def test_every_unknown_reference_is_listed(registry_client, author):
    response = registry_client.post(
        "/registry/agents",
        json={
            "name": "a",
            "skill_id": str(uuid.uuid4()),
            "job_role_id": str(uuid.uuid4()),
            "industry_id": str(uuid.uuid4()),
            "team_id": str(uuid.uuid4()),
            "governance_agent_id": str(uuid.uuid4()),
        },
        headers=author,
    )
    assert _violations(response) == {
        ("L1-REF-01", "skill_id"),
        ("L1-REF-01", "job_role_id"),
        ("L1-REF-01", "industry_id"),
        ("L1-REF-01", "team_id"),
        ("L1-REF-01", "governance_agent_id"),
    }


def test_a_reference_to_the_wrong_kind_is_422(registry_client, author, skill, create):
    skill_id = skill("not an industry")
    industry = create("industries", name="I", description="d")["identity"]["id"]
    team = registry_client.post(
        "/registry/teams",
        json={"name": "t", "description": "d", "job_role_id": skill_id, "industry_id": skill_id},
        headers=author,
    )
    assert _violations(team) == {("L1-REF-01", "job_role_id"), ("L1-REF-01", "industry_id")}
    role = registry_client.post(
        "/registry/job-roles",
        json={
            "name": "r",
            "description": "d",
            "required_skills": [industry],
            "seniority_level": "mid",
            "governance_agent_id": skill_id,
        },
        headers=author,
    )
    assert _violations(role) == {
        ("L1-REF-01", "required_skills[0]"),
        ("L1-REF-01", "governance_agent_id"),
    }


def test_input_and_reference_violations_are_listed_together(registry_client, author):
    response = registry_client.post(
        "/registry/agents",
        json={
            "skill_id": "skill-1",
            "job_role_id": str(uuid.uuid4()),
            "tags": "x",
            "external_id": 7,
            "id": "chosen-by-client",
        },
        headers=author,
    )
    assert _violations(response) == {
        ("INPUT-01", "name"),
        ("INPUT-05", "skill_id"),
        ("L1-REF-01", "job_role_id"),
        ("INPUT-01", "industry_id"),
        ("INPUT-02", "tags"),
        ("INPUT-02", "external_id"),
        ("INPUT-04", "id"),
    }


def test_missing_required_fields_of_each_kind_are_listed(registry_client, author):
    required = {
        "skills": {"name", "description", "category"},
        "job-roles": {"name", "description", "required_skills", "seniority_level"},
        "teams": {"name", "description", "job_role_id"},
        "agents": {"name", "skill_id", "job_role_id", "industry_id"},
        "industries": {"name", "description"},
    }
    for slug, fields in required.items():
        response = registry_client.post(f"/registry/{slug}", json={}, headers=author)
        assert _violations(response) == {("INPUT-01", f) for f in fields}, slug


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"required_skills": "x"}, {("INPUT-02", "required_skills")}),
        (
            {"required_skills": [str(uuid.uuid4()) for _ in range(101)]},
            {("INPUT-03", "required_skills")},
        ),
        (
            {"required_skills": ["nope", None]},
            {("INPUT-05", "required_skills[0]"), ("INPUT-05", "required_skills[1]")},
        ),
        ({"seniority_level": "Senior"}, {("L1-JOBROLE-04", "seniority_level")}),
        ({"industry_id": 5}, {("INPUT-05", "industry_id")}),
    ],
)
def test_job_role_list_and_enum_limits(registry_client, author, fields, expected):
    body = {"name": "r", "description": "d", "required_skills": [], "seniority_level": "mid"}
    response = registry_client.post("/registry/job-roles", json=body | fields, headers=author)
    found = _violations(response) - {("L1-JOBROLE-01", "required_skills")}
    assert found == expected


@pytest.mark.parametrize(
    ("attributes", "tags"),
    [
        ({f"k{i}": i for i in range(51)}, None),
        ({"big": "x" * (16 * 1024)}, None),
        ([1, 2], None),
        (None, ["t" * 65]),
        (None, [""]),
        (None, "tag"),
    ],
)
def test_tag_and_custom_attribute_limits(registry_client, author, attributes, tags):
    body = {"name": "n", "description": "d", "category": "technical"}
    field = "custom_attributes" if attributes is not None else "tags"
    body[field] = attributes if attributes is not None else tags
    found = _violations(registry_client.post("/registry/skills", json=body, headers=author))
    assert len(found) == 1
    assert next(iter(found))[1].startswith(field)


def test_custom_attributes_within_limits_are_kept_as_sent(registry_client, author):
    attributes = {"a": {"b": {"c": {"d": 1}}}, "list": [1, 2.5, "x", None, True], "é": "ü"}
    response = registry_client.post(
        "/registry/skills",
        json={
            "name": "attrs",
            "description": "d",
            "category": "technical",
            "custom_attributes": attributes,
        },
        headers=author,
    )
    assert response.status_code == 201, response.json
    assert response.json["metadata"]["custom_attributes"] == attributes


def test_a_deprecated_agent_frees_its_skill_role_team_key(
    registry_client, author, create, certified_skill
):
    skill_id = certified_skill("s")
    industry = create("industries", name="I", description="d")["identity"]["id"]
    role = create(
        "job-roles", name="r", description="d", required_skills=[skill_id], seniority_level="mid"
    )["identity"]["id"]
    body = {"skill_id": skill_id, "job_role_id": role, "industry_id": industry}
    first = create("agents", name="first", **body)["identity"]["id"]
    twin = registry_client.post("/registry/agents", json={"name": "twin", **body}, headers=author)
    assert twin.status_code == 409 and twin.json["existing_id"] == first
    registry_client.post(
        f"/registry/agents/{first}/status",
        json={"status": "deprecated", "reason": "retired"},
        headers=author,
    )
    again = registry_client.post("/registry/agents", json={"name": "twin", **body}, headers=author)
    assert again.status_code == 201, again.json
