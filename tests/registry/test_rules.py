"""L1 and relationship rules: every violation listed at once, uniqueness as 409."""

from __future__ import annotations

import uuid


def _violations(response) -> set[tuple[str, str]]:
    assert response.status_code == 422, response.json
    return {(v["rule"], v["field"]) for v in response.json["violations"]}


def test_every_input_violation_is_listed_at_once(api):
    response = api.post(
        "/skills",
        {
            "name": "",
            "category": "magic",
            "version": 3,
            "digest": "x",
            "tags": ["ok", 5],
            "governance_agent_id": "nope",
            "custom_attributes": {"a": {"b": {"c": {"d": {"e": 1}}}}},
        },
    )
    assert _violations(response) == {
        ("INPUT-01", "name"),
        ("INPUT-01", "description"),
        ("L1-SKILL-01", "category"),
        ("INPUT-04", "version"),
        ("INPUT-04", "digest"),
        ("INPUT-02", "tags[1]"),
        ("INPUT-05", "governance_agent_id"),
        ("INPUT-03", "custom_attributes"),
    }
    assert all(v["message"] for v in response.json["violations"])


def test_limits_on_lengths_and_counts(api):
    response = api.post(
        "/skills",
        {"name": "n" * 201, "description": "d", "category": "technical", "tags": ["t"] * 51},
    )
    assert _violations(response) == {("INPUT-03", "name"), ("INPUT-03", "tags")}


def test_job_role_needs_certified_distinct_live_skills(api, certify):
    draft = api.skill("draft skill")
    good = api.skill("good skill")
    certify("skills", good)
    response = api.post(
        "/job-roles",
        {
            "name": "r",
            "description": "d",
            "required_skills": [good, good, draft, str(uuid.uuid4())],
            "seniority_level": "principal",
        },
    )
    assert _violations(response) == {
        ("L1-JOBROLE-02", "required_skills[1]"),
        ("L1-JOBROLE-03", "required_skills[2]"),
        ("L1-REF-01", "required_skills[3]"),
        ("L1-JOBROLE-04", "seniority_level"),
    }
    empty = api.post(
        "/job-roles",
        {"name": "r", "description": "d", "required_skills": [], "seniority_level": "mid"},
    )
    assert ("L1-JOBROLE-01", "required_skills") in _violations(empty)


def test_agent_rules(api, certify):
    skills = [api.skill("a"), api.skill("b")]
    for s in skills:
        certify("skills", s)
    industry = api.post("/industries", {"name": "I", "description": "d"}).json["identity"]["id"]
    other = api.post("/industries", {"name": "J", "description": "d"}).json["identity"]["id"]
    role = api.post(
        "/job-roles",
        {"name": "r", "description": "d", "required_skills": [skills[0]], "seniority_level": "mid"},
    ).json["identity"]["id"]
    wrong = api.post(
        "/agents",
        {"name": "x", "skill_id": skills[1], "job_role_id": role, "industry_id": industry},
    )
    assert _violations(wrong) == {("L1-AGENT-01", "skill_id")}
    agent = api.post(
        "/agents",
        {"name": "x", "skill_id": skills[0], "job_role_id": role, "industry_id": industry},
    ).json["identity"]["id"]
    moved = api.patch(
        f"/agents/{agent}",
        {"industry_id": other, "amendment_reason": "move"},
        **{"If-Match": '"v1"'},
    )
    assert _violations(moved) == {("L1-AGENT-02", "industry_id")}
    twin = api.post(
        "/agents",
        {"name": "y", "skill_id": skills[0], "job_role_id": role, "industry_id": industry},
    )
    assert twin.status_code == 409
    assert twin.json["violations"][0]["rule"] == "L1-AGENT-03"


def test_skill_names_are_unique_among_live_skills_ignoring_case(api):
    first = api.skill("Python")
    duplicate = api.post("/skills", {"name": "PYTHON", "description": "d", "category": "technical"})
    assert duplicate.status_code == 409
    assert duplicate.json["violations"][0]["rule"] == "L1-SKILL-02"
    api.post(f"/skills/{first}/status", {"status": "deprecated", "reason": "replaced"})
    assert (
        api.post(
            "/skills", {"name": "python", "description": "d", "category": "technical"}
        ).status_code
        == 201
    )


def test_deprecated_entities_cannot_be_referenced(api, certify):
    skill = api.skill("old")
    certify("skills", skill)
    api.post(f"/skills/{skill}/status", {"status": "deprecated", "reason": "gone"})
    response = api.post(
        "/job-roles",
        {"name": "r", "description": "d", "required_skills": [skill], "seniority_level": "mid"},
    )
    assert ("L1-REF-02", "required_skills[0]") in _violations(response)


def test_amendment_needs_a_reason(api):
    skill = api.skill("why")
    response = api.patch(f"/skills/{skill}", {"description": "e"}, **{"If-Match": '"v1"'})
    assert _violations(response) == {("INPUT-01", "amendment_reason")}
