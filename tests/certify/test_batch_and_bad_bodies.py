"""A version the registry would refuse (a NUL in custom_attributes, written by an insider
through its own ledger functions) breaks no one's certification but its team's, which gets a
clear 409; a batch commits each item with its own result and never answers 500 after a
commit."""

from __future__ import annotations

import pytest

from shared import tlog
from shared.registry import certification, reads, writes
from shared.security.principal import Principal
from tests.support.reliability_table import record
from tests.support.tampering import append_unchecked


def _auth(make_token, tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(tenant, 'certifier', subject='carol')}"}


class Teams:
    """Two teams of one certified job role, each with one agent (assigned by team_id)."""

    def __init__(self, people) -> None:
        self.people = people
        skill = people.skill()
        certification.certify(people.certifier, "skills", skill, None, "r")
        role = people.create(
            "job-roles", name="r", description="d", required_skills=[skill], seniority_level="mid"
        )
        certification.certify(people.certifier, "job-roles", role, None, "r")
        industry = people.create("industries", name="i", description="d")
        self.teams, self.agents = [], []
        for n in range(2):
            team = people.create("teams", name=f"t{n}", description="d", job_role_id=role)
            agent = people.create(
                "agents",
                name=f"a{n}",
                skill_id=skill,
                job_role_id=role,
                industry_id=industry,
                team_id=team,
            )
            self.teams.append(team)
            self.agents.append(agent)

    def poison(self, n: int) -> int:
        """Agent ``n``'s next version holds a NUL, written past the input checks."""
        index = append_unchecked(
            self.people.author, "agents", self.agents[n], custom_attributes={"x": "\u0000"}
        )
        tlog.seal(self.people.tenant)
        return index


@pytest.fixture
def teams(people) -> Teams:
    return Teams(people)


def test_a_bad_agent_body_is_a_409_for_its_own_team_only(
    request, teams, people, certify_client, make_token
):
    index = teams.poison(1)
    headers = _auth(make_token, people.tenant)
    clean = certify_client.post(f"/certify/teams/{teams.teams[0]}", headers=headers)
    assert clean.status_code == 201, clean.json
    spoiled = certify_client.post(f"/certify/teams/{teams.teams[1]}", headers=headers)
    assert spoiled.status_code == 409, spoiled.json
    assert spoiled.mimetype == "application/problem+json"
    assert spoiled.json["type"].endswith("/integrity-violation")
    assert teams.agents[1] in spoiled.json["detail"]
    assert str(index) in spoiled.json["detail"]
    status = reads.get(people.author, "teams", teams.teams[1]).body["lifecycle"]["status"]
    assert status == "draft"
    record(
        request.node,
        "NUL in an agent body written by an insider, then team certification",
        2,
        "other teams 201; the agent's team 409 integrity-violation naming the agent and index",
    )


def test_a_batch_of_a_skill_and_a_team_answers_each(
    request, teams, people, certify_client, make_token
):
    teams.poison(1)
    skill = people.skill()
    items = [
        {"kind": "skills", "id": skill},
        {"kind": "teams", "id": teams.teams[1]},
        {"kind": "teams", "id": teams.teams[0]},
    ]
    response = certify_client.post(
        "/certify/batch", json={"items": items}, headers=_auth(make_token, people.tenant)
    )
    assert response.status_code == 200, response.json
    assert [r["status"] for r in response.json["results"]] == [201, 409, 201]
    assert response.json["certified"] == 2
    assert reads.get(people.author, "skills", skill).body["lifecycle"]["status"] == "certified"
    record(
        request.node,
        "certification batch of a skill and a team with a NUL agent",
        1,
        "200 with each item's result (201, 409, 201), never a 500 after a commit",
    )


def test_a_failing_item_in_the_middle_leaves_the_others_certified(
    people, certify_client, make_token
):
    first, stale, last = people.skill(), people.skill(), people.skill()
    writes.amend(
        people.author, "skills", stale, {"description": "e", "amendment_reason": "x"}, '"v1"', "r"
    )
    items = [
        {"kind": "skills", "id": first},
        {"kind": "skills", "id": stale, "version": 1},
        {"kind": "skills", "id": last},
    ]
    response = certify_client.post(
        "/certify/batch", json={"items": items}, headers=_auth(make_token, people.tenant)
    )
    assert response.status_code == 200
    results = response.json["results"]
    assert [r["status"] for r in results] == [201, 409, 201]
    assert results[1]["problem"]["current_version"] == 2
    for skill, status in ((first, "certified"), (stale, "draft"), (last, "certified")):
        assert reads.get(people.author, "skills", skill).body["lifecycle"]["status"] == status


def test_a_server_error_after_the_first_item_is_that_items_result(
    request, people, certify_client, make_token, monkeypatch
):
    skills = [people.skill() for _ in range(3)]
    checks = certification.run_checks
    calls = []

    def failing_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("injected after the first item committed")
        return checks(*args, **kwargs)

    monkeypatch.setattr(certification, "run_checks", failing_second)
    response = certify_client.post(
        "/certify/batch",
        json={"items": [{"kind": "skills", "id": s} for s in skills]},
        headers=_auth(make_token, people.tenant),
    )
    assert response.status_code == 200, response.json
    results = response.json["results"]
    assert [r["status"] for r in results] == [201, 500, 201]
    assert results[1]["problem"]["type"].endswith("/internal")
    assert "injected" not in str(results[1]["problem"])  # no internals leak
    assert response.json["certified"] == 2 and response.json["failed"] == 1
    reader = Principal("r", people.tenant, frozenset({"reader"}))
    statuses = [reads.get(reader, "skills", s).body["lifecycle"]["status"] for s in skills]
    assert statuses == ["certified", "draft", "certified"]
    cert = reads.get(reader, "skills", skills[0]).body["constitutional_alignment"]
    assert cert["certification"]["certificate_log_index"] == results[0]["certificate_log_index"]
    record(
        request.node,
        "server error injected in a certification batch after the first item committed",
        1,
        "200 with each item's result (201, 500 problem, 201); committed items reported",
    )
