"""The certification cascade (issue 23, item 1): when an entity leaves ``certified``, every
certified entity that references it, directly or through others, leaves with it, in the same
transaction, by a version of its own (actor ``system``); the write's response lists them;
and a full audit afterwards finds nothing.

Each case certifies one world in which every reference field of every kind is used, then
amends, suspends or deprecates the entity that field references, through the real registry
function, and checks every entity of the world.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import text

from shared import audit
from shared.config import ROOT
from shared.registry import certification, reads, writes
from shared.security.principal import Principal
from shared.storage.engine import database
from tests.certify.conftest import Team
from tests.support.reliability_table import record
from tests.support.tampering import status_past_the_cascade

ACTIONS = ("amend", "suspend", "deprecate")


@dataclass
class World:
    """Every entity by a short name, and what each references (name -> names)."""

    ids: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    uses: dict[str, set[str]] = field(default_factory=dict)

    def add(self, name: str, slug: str, entity_id: str, *uses: str) -> None:
        self.ids[name], self.kinds[name], self.uses[name] = entity_id, slug, set(uses)

    def dependents(self, origin: str) -> set[str]:
        """Everything that references ``origin``, directly or through others."""
        found: set[str] = set()
        frontier = {origin}
        while frontier:
            frontier = {
                n for n, uses in self.uses.items() if uses & frontier and n not in found
            } - {origin}
            found |= frontier
        return found


def _world(people: Team) -> World:
    """Industry I, a governance agent G (its own skill SG, job role JG, industry I); skill S,
    job role J, agent A and team T (A in T by its team_id, so T uses A: shared.registry.membership),
    all governed by G; industry I2
    governed by G. Every one certified."""
    w = World()
    carol = people.certifier

    def certify(name: str) -> None:
        certification.certify(carol, w.kinds[name], w.ids[name], None, "test")

    def make(name: str, slug: str, *uses: str, **fields: Any) -> None:
        fields.setdefault("name", f"{name} {uuid.uuid4().hex[:6]}")
        fields.setdefault("description", "d")
        w.add(name, slug, people.create(slug, **fields), *uses)
        certify(name)

    make("I", "industries")
    make("SG", "skills", category="technical")
    make("JG", "job-roles", "SG", required_skills=[w.ids["SG"]], seniority_level="mid")
    make(
        "G",
        "agents",
        "SG",
        "JG",
        "I",
        skill_id=w.ids["SG"],
        job_role_id=w.ids["JG"],
        industry_id=w.ids["I"],
    )
    g = w.ids["G"]
    make("I2", "industries", "G", governance_agent_id=g)
    make("S", "skills", "G", category="technical", governance_agent_id=g)
    make(
        "J",
        "job-roles",
        "S",
        "I",
        "G",
        required_skills=[w.ids["S"]],
        industry_id=w.ids["I"],
        seniority_level="senior",
        governance_agent_id=g,
    )
    a = people.create(
        "agents",
        name="A",
        skill_id=w.ids["S"],
        job_role_id=w.ids["J"],
        industry_id=w.ids["I"],
        governance_agent_id=g,
    )
    t = people.create(
        "teams",
        name="T",
        description="d",
        job_role_id=w.ids["J"],
        industry_id=w.ids["I"],
        governance_agent_id=g,
    )
    writes.assign_team(people.author, a, {"team_id": t}, None, "test")
    w.add("A", "agents", a, "S", "J", "I", "T", "G")
    w.add("T", "teams", t, "J", "I", "A", "G")
    certify("A")
    certify("T")
    return w


# (kind, reference field): the entity whose field it is, and the entity the field names.
FIELDS = {
    ("job_role", "required_skills"): ("J", "S"),
    ("job_role", "industry_id"): ("J", "I"),
    ("job_role", "governance_agent_id"): ("J", "G"),
    ("team", "job_role_id"): ("T", "J"),
    ("team", "industry_id"): ("T", "I"),
    ("team", "agents"): ("T", "A"),  # derived: the agents whose team_id names the team
    ("team", "governance_agent_id"): ("T", "G"),
    ("agent", "skill_id"): ("A", "S"),
    ("agent", "job_role_id"): ("A", "J"),
    ("agent", "industry_id"): ("A", "I"),
    ("agent", "team_id"): ("A", "T"),
    ("agent", "governance_agent_id"): ("A", "G"),
    ("skill", "governance_agent_id"): ("S", "G"),
    ("industry", "governance_agent_id"): ("I2", "G"),
}


@pytest.fixture
def registry_client(database_url: str):
    import functions_framework

    return functions_framework.create_app(
        target="registry", source=str(ROOT / "main.py")
    ).test_client()


def _write(client, token: str, slug: str, entity_id: str, action: str) -> Any:
    auth = {"Authorization": f"Bearer {token}"}
    if action == "amend":
        return client.patch(
            f"/registry/{slug}/{entity_id}",
            json={"description": "changed", "amendment_reason": "clearer"},
            headers={**auth, "If-Match": _etag(client, auth, slug, entity_id)},
        )
    target = "suspended" if action == "suspend" else "deprecated"
    return client.post(
        f"/registry/{slug}/{entity_id}/status",
        json={"status": target, "reason": "withdrawn"},
        headers=auth,
    )


def _etag(client, auth: dict[str, str], slug: str, entity_id: str) -> str:
    return client.get(f"/registry/{slug}/{entity_id}", headers=auth).headers["ETag"]


def _status(people: Team, w: World, name: str) -> tuple[str, int]:
    doc = reads.get(people.author, w.kinds[name], w.ids[name])
    return doc.body["lifecycle"]["status"], doc.version


def _full_audit(tenant: str) -> list[dict[str, Any]]:
    run, _ = audit.run(Principal("audrey", tenant, frozenset({"auditor"})), {"mode": "full"})
    assert run["status"] == "completed", run
    return run["findings"]


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("reference", sorted(FIELDS), ids=lambda r: f"{r[0]}.{r[1]}")
def test_leaving_certified_moves_every_dependent(
    people, registry_client, make_token, reference, action
):
    w = _world(people)
    holder, origin = FIELDS[reference]
    before = {name: _status(people, w, name) for name in w.ids}
    assert {status for status, _ in before.values()} == {"certified"}
    expected = w.dependents(origin)
    assert holder in expected
    moved_to = "pending_certification" if action == "amend" else "suspended"

    token = make_token(people.tenant, "author", "reader", subject="alice")
    response = _write(registry_client, token, w.kinds[origin], w.ids[origin], action)

    assert response.status_code == 200, response.json
    origin_version = before[origin][1] + 1
    for name in w.ids:
        status, version = _status(people, w, name)
        if name == origin:
            assert version == origin_version
        elif name in expected:
            assert (status, version) == (moved_to, before[name][1] + 1), name
        else:
            assert (status, version) == ("certified", before[name][1]), name

    assert response.json["versioning"]["version"] == origin_version
    cascade = response.json["cascade"]
    by_id = {item["id"]: item for item in cascade}
    assert len(by_id) == len(cascade)
    assert set(by_id) == {w.ids[name] for name in expected}
    for name in expected:
        item = by_id[w.ids[name]]
        assert item["kind"] == w.kinds[name]
        assert item["version"] == before[name][1] + 1
        assert item["status"] == moved_to
    # One transaction: the origin's index, then the cascade's, contiguous.
    indices = [response.json["audit_trail"]["log_index"]] + [i["log_index"] for i in cascade]
    assert indices == list(range(indices[0], indices[0] + len(indices)))

    # The holder's new version: by the system, naming the origin and its new version.
    versions = reads.list_versions(people.author, w.kinds[holder], w.ids[holder])["versions"]
    last = versions[-1]
    assert last["amended_by"] == "system"
    assert last["action"] == "cascade"
    assert w.ids[origin] in last["amendment_reason"]
    assert f"version {origin_version}" in last["amendment_reason"]
    with database().transaction(people.tenant) as conn:
        actor = conn.execute(
            text("SELECT actor FROM log_entries WHERE idx = :i"), {"i": last["log_index"]}
        ).scalar_one()
    assert actor == "system"
    # Certificates stay what they were: the new version still points at the old certificate.
    doc = reads.get(people.author, w.kinds[holder], w.ids[holder]).body
    assert doc["constitutional_alignment"]["certification"]["certified_version"] < last["version"]

    assert _full_audit(people.tenant) == []


def test_a_write_that_moves_nothing_certified_lists_nothing(people, registry_client, make_token):
    skill = people.skill()
    token = make_token(people.tenant, "author", "reader", subject="alice")
    response = _write(registry_client, token, "skills", skill, "amend")
    assert response.status_code == 200, response.json
    assert response.json["cascade"] == []


def test_a_moved_dependent_can_be_certified_again(people, registry_client, make_token):
    w = _world(people)
    token = make_token(people.tenant, "author", "reader", subject="alice")
    response = _write(registry_client, token, "skills", w.ids["S"], "amend")
    assert response.status_code == 200, response.json
    for name in ("S", "J", "A", "T"):
        certification.certify(people.certifier, w.kinds[name], w.ids[name], None, "again")
        assert _status(people, w, name)[0] == "certified"
    assert _full_audit(people.tenant) == []


def test_the_audit_flags_every_certified_user_of_an_uncertified_entity(people):
    """Agreement without the cascade too: a skill version written past it leaves its
    certified job role and agent certified; the audit names both, by the same rule (before
    this change it named the job role alone, by L1-JOBROLE-03)."""
    w = _world(people)
    status_past_the_cascade(people.author, "skills", w.ids["S"], "pending_certification")
    assert _status(people, w, "J")[0] == _status(people, w, "A")[0] == "certified"
    flagged = {
        (f["entity_id"], f["rule"]) for f in _full_audit(people.tenant) if f["rule"] == "L0-05"
    }
    assert flagged == {(w.ids["J"], "L0-05"), (w.ids["A"], "L0-05")}


RACES = 6


def _race(people: Team, skill: str, role: str) -> dict[str, Any]:
    """Amend ``skill`` and certify ``role`` at once: the amendment's Document and the
    certification's status."""
    import threading

    from shared.errors import PlantError

    start = threading.Barrier(2)
    result: dict[str, Any] = {}

    def amend() -> None:
        start.wait()
        body = {"description": "changed", "amendment_reason": "race"}
        result["amend"] = writes.amend(people.author, "skills", skill, body, '"v2"', "r")

    def certify() -> None:
        start.wait()
        try:
            certification.certify(people.certifier, "job-roles", role, None, "r")
            result["certify"] = 201
        except PlantError as exc:
            result["certify"] = exc.status

    threads = [threading.Thread(target=amend), threading.Thread(target=certify)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return result


def test_a_certification_racing_the_cascade_never_outlives_it(request, people):
    """A job role certified while its skill is amended: either the certification commits
    first and the cascade moves the job role, or it comes after and fails L0-05. Never a
    certified job role on an uncertified skill; the log stays contiguous and audits clean."""
    outcomes = []
    for _ in range(RACES):
        skill = people.skill()
        certification.certify(people.certifier, "skills", skill, None, "r")
        role = people.create(
            "job-roles",
            name=f"role {uuid.uuid4().hex[:6]}",
            description="d",
            required_skills=[skill],
            seniority_level="mid",
        )
        result = _race(people, skill, role)
        moved = {item["id"] for item in result["amend"].cascade}
        status = reads.get(people.author, "job-roles", role).body["lifecycle"]["status"]
        assert status != "certified"
        if result["certify"] == 201:
            assert moved == {role} and status == "pending_certification"
        else:
            assert result["certify"] == 422 and moved == set()
        outcomes.append("moved" if moved else "refused")
    assert _full_audit(people.tenant) == []
    record(
        request.node,
        "certification racing the cascade (job role certified while its skill is amended)",
        RACES,
        f"{outcomes.count('moved')} certified then moved by the cascade, "
        f"{outcomes.count('refused')} refused (422, L0-05); 0 certified on an uncertified "
        "skill; full audit: 0 findings",
        0,
    )


def test_a_team_assignment_lists_what_it_moved(people, registry_client, make_token):
    """Taking a certified agent out of its team is an amendment of the agent: the team that
    lists it leaves certified, and the assignment's response says so."""
    w = _world(people)
    auth = {"Authorization": f"Bearer {make_token(people.tenant, 'author', 'reader')}"}
    response = registry_client.post(
        f"/registry/agents/{w.ids['A']}/team", json={"team_id": None}, headers=auth
    )
    assert response.status_code == 200, response.json
    assert response.json["relationships"]["team_id"] is None
    assert [(i["kind"], i["id"], i["status"]) for i in response.json["cascade"]] == [
        ("teams", w.ids["T"], "pending_certification")
    ]
    assert _full_audit(people.tenant) == []


def test_referencing_reads_the_stored_current_versions(people):
    """``dependents.referencing``: the live entities whose current version names an id, of
    a status if asked; what a version's text says about the id does not count."""
    from shared.registry import dependents

    w = _world(people)
    people.create(
        "skills",
        name=f"mentions {uuid.uuid4().hex[:6]}",
        description=f"not a reference: {w.ids['S']}",
        category="technical",
    )
    with database().transaction(people.tenant) as conn:
        found = [e.head.entity_id for e in dependents.referencing(conn, [w.ids["S"]])]
        certified = dependents.referencing(conn, [w.ids["J"]], status="certified")
    assert found == sorted([w.ids["J"], w.ids["A"]])
    assert sorted(e.head.entity_id for e in certified) == sorted([w.ids["A"], w.ids["T"]])


def test_an_agent_moved_between_certified_teams_moves_both(people, registry_client, make_token):
    """A certified agent moved from certified team T to certified team T2 changes both teams'
    membership: each leaves certified (and with T2 the agent it still holds), and the
    assignment's response lists them."""
    w = _world(people)
    t2 = people.create(
        "teams",
        name="T2",
        description="d",
        job_role_id=w.ids["J"],
        industry_id=w.ids["I"],
        governance_agent_id=w.ids["G"],
    )
    a2 = people.create(  # G's skill and job role, in T2: an agent's key holds its team
        "agents",
        name="A2",
        skill_id=w.ids["SG"],
        job_role_id=w.ids["JG"],
        industry_id=w.ids["I"],
        governance_agent_id=w.ids["G"],
        team_id=t2,
    )
    certification.certify(people.certifier, "agents", a2, None, "test")
    certification.certify(people.certifier, "teams", t2, None, "test")
    auth = {"Authorization": f"Bearer {make_token(people.tenant, 'author', 'reader')}"}
    response = registry_client.post(
        f"/registry/agents/{w.ids['A']}/team", json={"team_id": t2}, headers=auth
    )
    assert response.status_code == 200, response.json
    assert response.json["relationships"]["team_id"] == t2
    assert sorted((i["kind"], i["id"], i["status"]) for i in response.json["cascade"]) == sorted(
        [
            ("teams", w.ids["T"], "pending_certification"),
            ("teams", t2, "pending_certification"),
            ("agents", a2, "pending_certification"),  # it names T2 by its team_id
        ]
    )
    assert _full_audit(people.tenant) == []
