"""Team membership is recorded once (issue 23, item 2): each agent's ``team_id`` in its
current version. A team's served document (read, list, write and certification responses)
lists its live agents from that record, the certification rule L1-TEAM-01 counts the same
list, and assigning, moving, suspending and deprecating an agent show there at once. A team's
own ``agents`` cannot be written; a list an older team version holds records nothing. All
through the real registry, certify and audit apps over the real PostgreSQL.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from shared.config import ROOT
from shared.registry import membership
from shared.security.principal import Principal
from tests.support.reliability_table import record
from tests.support.tampering import append_unchecked

Headers = dict[str, str]


@pytest.fixture(scope="module")
def apps(database_url: str) -> dict[str, Any]:
    import functions_framework

    return {
        name: functions_framework.create_app(
            target=name, source=str(ROOT / "main.py")
        ).test_client()
        for name in ("certify", "audit")
    }


class Registry:
    """One tenant's callers: alice writes, carol certifies, audrey audits."""

    def __init__(self, client, apps, bearer, tenant: str) -> None:
        self.client, self.apps, self.tenant = client, apps, tenant
        self.author = bearer(tenant, "author", "reader")
        self.certifier = bearer(tenant, "certifier", "reader", subject="carol")
        self.auditor = bearer(tenant, "auditor", "reader", subject="audrey")
        self.skills = [self.create("skills", name=f"s{n}", category="technical") for n in range(3)]
        for skill in self.skills:
            self.certify("skills", skill)
        self.role = self.create(
            "job-roles", name="role", required_skills=self.skills, seniority_level="mid"
        )
        self.certify("job-roles", self.role)
        self.industry = self.create("industries", name="industry")
        self.certify("industries", self.industry)

    def create(self, slug: str, **fields: Any) -> str:
        response = self.client.post(
            f"/registry/{slug}", json={"description": "d", **fields}, headers=self.author
        )
        assert response.status_code == 201, response.json
        return response.json["identity"]["id"]

    def batch(self, slug: str, items: list[dict[str, Any]]) -> list[str]:
        body = {"items": [{"description": "d", **item} for item in items]}
        response = self.client.post(f"/registry/{slug}/batch", json=body, headers=self.author)
        assert response.status_code == 201, response.json
        return [item["id"] for item in response.json["items"]]

    def team(self, name: str) -> str:
        return self.create("teams", name=name, job_role_id=self.role)

    def agent(self, n: int, team: str | None) -> str:
        """Agent ``n`` (its own skill of the role's three: agents of one team differ)."""
        fields = dict(skill_id=self.skills[n], job_role_id=self.role, industry_id=self.industry)
        return self.create("agents", name=f"a{n}", team_id=team, **fields)

    def move(self, agent: str, team: str | None) -> Any:
        response = self.client.post(
            f"/registry/agents/{agent}/team", json={"team_id": team}, headers=self.author
        )
        assert response.status_code == 200, response.json
        return response.json

    def status(self, slug: str, entity: str, status: str) -> Any:
        response = self.client.post(
            f"/registry/{slug}/{entity}/status",
            json={"status": status, "reason": "retired"},
            headers=self.author,
        )
        assert response.status_code == 200, response.json
        return response.json

    def members(self, team: str) -> list[str]:
        """The team's agents as GET /registry/teams/{id} serves them (and as its list does)."""
        response = self.client.get(f"/registry/teams/{team}", headers=self.author)
        assert response.status_code == 200, response.json
        listed = self.client.get("/registry/teams?limit=500", headers=self.author).json["items"]
        in_list = [d["relationships"]["agents"] for d in listed if d["identity"]["id"] == team]
        assert in_list == [response.json["relationships"]["agents"]], "the list disagrees"
        return response.json["relationships"]["agents"]

    def certify(self, slug: str, entity: str) -> Any:
        return self.apps["certify"].post(f"/certify/{slug}/{entity}", headers=self.certifier)

    def team_rule(self, team: str) -> tuple[int, str, Any]:
        """Certify a team: (status, L1-TEAM-01's message, the response body)."""
        response = self.certify("teams", team)
        body = response.json
        checks = body["statement"]["predicate"]["checks"] if response.status_code == 201 else []
        checks = checks or body.get("checks", [])
        message = next(c["message"] for c in checks if c["check"] == "L1-TEAM-01")
        return response.status_code, message, body

    def audit(self) -> list[dict[str, Any]]:
        response = self.apps["audit"].post(
            "/audit/runs", json={"mode": "full"}, headers=self.auditor
        )
        assert response.status_code in (200, 201), response.json
        assert response.json["status"] == "completed", response.json
        return response.json["findings"]


@pytest.fixture
def registry(registry_client, apps, bearer, tenant) -> Registry:
    return Registry(registry_client, apps, bearer, tenant)


def test_the_issues_sequence_create_with_team_then_assign_to_another(request, registry):
    """Issue 23, attack 2: an agent created with team_id, then POST /agents/{id}/team to
    another team. Before: GET of either team served ``"agents": []`` (the team's own list)
    while certifying the first passed L1-TEAM-01 with "1 agent(s)"."""
    first, second = registry.team("first"), registry.team("second")
    agent = registry.agent(0, first)
    assert registry.members(first) == [agent]
    assert registry.members(second) == []

    registry.move(agent, second)
    assert registry.members(first) == []
    assert registry.members(second) == [agent]

    status, message, body = registry.team_rule(first)
    assert (status, message) == (422, "0 agent(s)"), body
    assert body["violations"][0]["rule"] == "L1-TEAM-01"
    status, message, body = registry.team_rule(second)
    assert (status, message) == (201, "1 agent(s)"), body
    assert body["entity"]["relationships"]["agents"] == [agent]  # the response, as served
    assert registry.members(second) == [agent]
    assert registry.audit() == []
    record(
        request.node,
        "team membership: agent created with team_id, then assigned to another team",
        2,
        "both teams serve their live agents; L1-TEAM-01 counts the served list (0 and 1); "
        "full audit: 0 findings",
    )


def test_moving_taking_out_and_retiring_agents_show_in_the_served_list(request, registry):
    team, other = registry.team("team"), registry.team("other")
    agents = [registry.agent(n, team) for n in range(3)]
    assert registry.members(team) == agents  # in creation order

    registry.move(agents[0], other)
    assert registry.members(team) == agents[1:] and registry.members(other) == [agents[0]]
    registry.move(agents[0], None)  # taken out of every team
    assert registry.members(other) == []

    deprecated = registry.status("agents", agents[1], "deprecated")
    assert deprecated["relationships"]["team_id"] == team  # its last version still names it
    assert registry.members(team) == [agents[2]]
    assert registry.certify("agents", agents[2]).status_code == 201  # only certified suspends
    registry.status("agents", agents[2], "suspended")
    assert registry.members(team) == []
    status, message, _ = registry.team_rule(team)
    assert (status, message) == (422, "0 agent(s)")

    registry.status("agents", agents[2], "pending_certification")  # back from suspended
    assert registry.members(team) == [agents[2]]
    status, message, body = registry.team_rule(team)
    assert (status, message) == (201, "1 agent(s)"), body
    assert registry.audit() == []
    record(
        request.node,
        "team membership: move, take out, deprecate, suspend and reinstate agents",
        6,
        "each shows in the team's read and list at once; L1-TEAM-01 counts the served list; "
        "full audit: 0 findings",
    )


def test_the_rule_counts_exactly_the_served_list(registry):
    team = registry.team("three")
    agents = [registry.agent(n, team) for n in range(3)]
    status, message, body = registry.team_rule(team)
    assert status == 201, body
    served = registry.members(team)
    assert served == agents and message == f"{len(served)} agent(s)"
    assert body["entity"]["relationships"]["agents"] == served


def test_a_team_cannot_list_agents_itself(request, registry, superuser):
    """Before: a team created with ``agents: [x]`` stored that list, and certification
    counted it (L1-TEAM-01 "1 agent(s)") though no agent named the team."""
    loner = registry.agent(0, None)
    before = _entries(superuser, registry.tenant)
    response = registry.client.post(
        "/registry/teams",
        json={"name": "t", "description": "d", "job_role_id": registry.role, "agents": [loner]},
        headers=registry.author,
    )
    assert response.status_code == 422, response.json
    assert response.mimetype == "application/problem+json"
    [violation] = response.json["violations"]
    assert (violation["rule"], violation["field"]) == ("INPUT-04", "agents")
    assert "/registry/agents/{id}/team" in violation["message"]

    team = registry.team("t")
    etag = registry.client.get(f"/registry/teams/{team}", headers=registry.author).headers["ETag"]
    middle = _entries(superuser, registry.tenant)
    response = registry.client.patch(
        f"/registry/teams/{team}",
        json={"agents": [], "amendment_reason": "list it"},
        headers={**registry.author, "If-Match": etag},
    )
    assert response.status_code == 422, response.json
    assert [(v["rule"], v["field"]) for v in response.json["violations"]] == [
        ("INPUT-04", "agents")
    ]
    assert _entries(superuser, registry.tenant) == middle == before + 1  # only the team
    record(
        request.node,
        "team membership: a team's own agents list written at create and amend",
        2,
        "422 problem+json INPUT-04 naming `agents` and the agent route; nothing written",
    )


def test_a_list_an_older_team_version_holds_records_nothing(request, registry):
    """A team version written before membership had one record may hold the list its author
    sent (written here past the input checks, as the registry wrote it then). It is neither
    served nor counted nor checked by the audit, and the team's next version stores it
    empty."""
    team = registry.team("legacy")
    listed = registry.agent(0, None)  # listed by the team, naming no team itself
    member = registry.agent(1, team)
    author = Principal("alice", registry.tenant, frozenset({"author"}))
    append_unchecked(author, "teams", team, agents=[listed])
    registry.status("agents", listed, "deprecated")  # before: the audit named the team

    assert registry.members(team) == [member]
    status, message, body = registry.team_rule(team)
    assert (status, message) == (201, "1 agent(s)"), body
    certified = registry.client.get(f"/registry/teams/{team}/versions", headers=registry.author)
    version = certified.json["versions"][-1]["version"]
    stored = registry.client.get(
        f"/registry/teams/{team}/versions/{version}", headers=registry.author
    )
    assert stored.json["relationships"]["agents"] == []  # the certified version's own bytes
    assert registry.audit() == []
    record(
        request.node,
        "team membership: an older team version listing a since-deprecated agent",
        1,
        "the list is not served, counted or audited; the next version stores []; "
        "full audit: 0 findings",
    )


def test_another_tenants_agents_are_never_members(request, registry, registry_client, bearer, apps):
    """An agent of another tenant whose current version names this tenant's team (written
    past the API's checks, which refuse the reference) is neither served nor counted."""
    team = registry.team("ours")
    ours = registry.agent(0, team)
    theirs = Registry(registry_client, apps, bearer, f"t-{uuid.uuid4().hex[:12]}")
    intruder = theirs.agent(0, None)
    outsider = Principal("alice", theirs.tenant, frozenset({"author"}))
    append_unchecked(outsider, "agents", intruder, team_id=team)
    named = registry.client.get(f"/registry/agents/{intruder}", headers=theirs.author)
    assert named.json["relationships"]["team_id"] == team  # it does name the team, there

    assert registry.members(team) == [ours]
    status, message, body = registry.team_rule(team)
    assert (status, message) == (201, "1 agent(s)"), body
    assert registry.audit() == []
    record(
        request.node,
        "team membership: another tenant's agent naming this tenant's team",
        1,
        "never served or counted (1 agent(s), ours only); full audit: 0 findings",
    )


_OTHER_TENANTS = text(  # 3,000 other tenants' live agents, three each, each in a team
    "INSERT INTO entity_heads (tenant_id, entity_id, kind, version, status, name, category, "
    "unique_key, first_index, log_index, created_at, updated_at) "
    "SELECT 'other ' || mod(i, 3000), gen_random_uuid(), 'agent', 1, 'draft', 'other ' || i, "
    "'t', 'skill|role|team ' || i, i, i, now(), now() FROM generate_series(1, 9000) AS i"
)


@pytest.mark.parametrize("statistics", ["none", "without the tenant", "with the tenant"])
def test_a_teams_agents_are_one_index_probe_as_the_app_role(registry, superuser, statistics):
    """The query every path uses (one team, or a page of them) reads only the teams' agents,
    through the team index (migration 0031), under row-level security as the application
    role, whatever the statistics say: the teams' ids are the index's conditions, never a
    filter over every live agent of the tenant or a scan of another index. Before 0031, with
    no statistics the planner estimated one row either way and kept the scan of the tenant's
    live agents filtered on the team (the cost tie this test once lost in one test order);
    with 3,000 other tenants it took ``entity_heads_by_name`` for a page of teams."""
    if statistics == "without the tenant":
        with superuser.connect() as conn:
            conn.execute(text("ANALYZE entity_heads"))
            conn.commit()
    teams = registry.batch(
        "teams", [{"name": f"t{n}", "job_role_id": registry.role} for n in range(100)]
    )
    fields = dict(job_role_id=registry.role, industry_id=registry.industry)
    registry.batch(
        "agents",
        [
            {"name": f"a{n}", "skill_id": skill, "team_id": team, **fields}
            for n, team in enumerate(teams)
            for skill in registry.skills
        ],
    )
    # One transaction, rolled back: the other tenants and the statistics go with it.
    with superuser.connect().execution_options(isolation_level="READ COMMITTED") as conn:
        conn.begin()
        conn.execute(_OTHER_TENANTS)
        if statistics == "with the tenant":
            conn.execute(text("ANALYZE entity_heads"))
        elif statistics == "none":
            conn.execute(
                text("DELETE FROM pg_statistic WHERE starelid = CAST('entity_heads' AS regclass)")
            )
        conn.execute(text("SET LOCAL ROLE plant_app"))
        conn.execute(text("SELECT set_config('plant.tenant', :t, true)"), {"t": registry.tenant})
        assert conn.execute(text("SELECT current_user")).scalar_one() == "plant_app"
        for asked in (teams[:1], teams[:10]):
            plan = conn.execute(
                text("EXPLAIN (FORMAT JSON) " + membership._HEADS.text), {"teams": asked}
            ).scalar_one()
            found = membership.live_agents(conn, asked)
            shown = json.dumps(plan)
            assert '"Index Name": "entity_heads_team_members"' in shown, (statistics, shown)
            assert "team_id" in json.dumps(_plan_values(plan, "Index Cond")), (statistics, shown)
            assert "team_id" not in json.dumps(_plan_values(plan, "Filter")), (statistics, shown)
            assert "current_setting" in json.dumps(_plan_values(plan, "Index Cond")), shown
            assert len(found) == len(asked)
            assert all(len(agents) == 3 for agents in found.values())
        conn.rollback()


def _plan_values(plan: Any, key: str) -> list[str]:
    """Every ``key`` ("Index Cond": what the index itself answers; "Filter": what is checked
    on the rows a scan returned) of a JSON plan."""
    if isinstance(plan, list):
        return [c for item in plan for c in _plan_values(item, key)]
    if not isinstance(plan, dict):
        return []
    own = [plan[key]] if key in plan else []
    return own + [c for value in plan.values() for c in _plan_values(value, key)]


def _entries(superuser, tenant: str) -> int:
    with superuser.connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM log_entries WHERE tenant_id = :t"), {"t": tenant}
        ).scalar_one()
