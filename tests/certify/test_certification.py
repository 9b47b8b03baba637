"""The constitutional gate: every check listed, certificates that verify, duties separated."""

from __future__ import annotations

import base64
import hashlib

from shared.integrity import canonical, dsse
from shared.registry import certification, reads, writes
from shared.tlog import keys


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_certifying_returns_a_dsse_certificate_over_the_version_digest(
    people, certify_client, make_token
):
    skill = people.skill()
    response = certify_client.post(
        f"/certify/skills/{skill}",
        headers=_auth(make_token(people.tenant, "certifier", subject="carol")),
    )
    assert response.status_code == 201, response.json
    body = response.json
    envelope = body["certificate"]
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    verifiers = {v.key_id_hex: v for v in keys.keyring().verifiers}
    statement = canonical.loads(dsse.verify_envelope(envelope, verifiers))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    version_1 = reads.get_version(people.author, "skills", skill, "1").body
    digest = statement["subject"][0]["digest"]["sha256"]
    assert "sha256:" + digest == version_1["audit_trail"]["digest"]
    predicate = statement["predicate"]
    assert predicate["certifier"] == "carol"
    assert predicate["log_index"] == version_1["audit_trail"]["log_index"]
    assert predicate["rule_catalogue_version"] == certification.CATALOGUE_VERSION
    checks = {c["check"]: c["result"] for c in predicate["checks"]}
    assert {"L0-01", "L0-02", "L0-03", "L0-04", "L0-05", "INTEGRITY-01"} <= set(checks)
    assert set(checks.values()) == {"pass"}
    current = reads.get(people.author, "skills", skill).body
    assert current["lifecycle"]["status"] == "certified"
    cert = current["constitutional_alignment"]["certification"]
    raw = canonical.dumps(envelope)
    assert cert["certificate_digest"] == "sha256:" + hashlib.sha256(raw).hexdigest()
    listed = certify_client.get(
        f"/certify/skills/{skill}/certificates", headers=_auth(make_token(people.tenant, "reader"))
    ).json
    assert [c["certificate_digest"] for c in listed["certificates"]] == [cert["certificate_digest"]]


def test_a_certifier_cannot_certify_a_version_they_authored(people, certify_client, make_token):
    skill = people.skill()
    both = _auth(make_token(people.tenant, "certifier", "author", subject="alice"))
    response = certify_client.post(f"/certify/skills/{skill}", headers=both)
    assert response.status_code == 403
    assert reads.get(people.author, "skills", skill).body["lifecycle"]["status"] == "draft"


def test_certifying_a_stale_version_is_409(people, certify_client, make_token):
    skill = people.skill()
    writes.amend(
        people.author, "skills", skill, {"description": "e", "amendment_reason": "x"}, '"v1"', "r"
    )
    response = certify_client.post(
        f"/certify/skills/{skill}",
        json={"version": 1},
        headers=_auth(make_token(people.tenant, "certifier", subject="carol")),
    )
    assert response.status_code == 409
    assert response.json["current_version"] == 2


def test_failing_checks_are_all_listed_with_remediation(people, certify_client, make_token):
    team_role_skill = people.skill()
    certification.certify(people.certifier, "skills", team_role_skill, None, "r")
    role = people.create(
        "job-roles",
        name="r",
        description="d",
        required_skills=[team_role_skill],
        seniority_level="mid",
    )
    team = people.create("teams", name="t", description="d", job_role_id=role)
    response = certify_client.post(
        f"/certify/teams/{team}",
        headers=_auth(make_token(people.tenant, "certifier", subject="carol")),
    )
    assert response.status_code == 422
    failed = {v["rule"]: v for v in response.json["violations"]}
    # The job role it uses is not certified, and the team has no agent.
    assert set(failed) == {"L0-05", "L1-TEAM-01"}
    assert all(v["remediation"] for v in failed.values())
    assert {c["check"] for c in response.json["checks"]} >= {"L0-03", "INTEGRITY-01"}


def test_batch_certifies_each_item_on_its_own(people, certify_client, make_token):
    good = [people.skill(), people.skill()]
    stale = people.skill()
    writes.amend(
        people.author, "skills", stale, {"description": "e", "amendment_reason": "x"}, '"v1"', "r"
    )
    items = [{"kind": "skills", "id": g} for g in good]
    items += [{"kind": "skills", "id": stale, "version": 1}, {"kind": "skills", "id": "not-an-id"}]
    response = certify_client.post(
        "/certify/batch",
        json={"items": items},
        headers=_auth(make_token(people.tenant, "certifier", subject="carol")),
    )
    assert response.status_code == 200
    statuses = [r["status"] for r in response.json["results"]]
    assert statuses == [201, 201, 409, 422]  # a malformed id names id, as on the route
    assert response.json["certified"] == 2
    for skill in good:
        assert reads.get(people.author, "skills", skill).body["lifecycle"]["status"] == "certified"


def test_batch_over_50_items_is_refused(people, certify_client, make_token):
    items = [{"kind": "skills", "id": people.skill()}] * 51
    response = certify_client.post(
        "/certify/batch",
        json={"items": items},
        headers=_auth(make_token(people.tenant, "certifier")),
    )
    assert response.status_code == 422
    assert response.json["violations"][0]["field"] == "items"


def test_certifying_needs_the_certifier_role_and_own_tenant(people, certify_client, make_token):
    skill = people.skill()
    author = _auth(make_token(people.tenant, "author", subject="bob"))
    assert certify_client.post(f"/certify/skills/{skill}", headers=author).status_code == 403
    stranger = _auth(make_token(people.tenant + "-x", "certifier", subject="carol"))
    assert certify_client.post(f"/certify/skills/{skill}", headers=stranger).status_code == 404


def test_full_chain_certifies_in_dependency_order(people):
    skill = people.skill()
    industry = people.create("industries", name="Retail", description="d")
    for entity, slug in ((skill, "skills"), (industry, "industries")):
        certification.certify(people.certifier, slug, entity, None, "r")
    role = people.create(
        "job-roles",
        name="Dev",
        description="d",
        required_skills=[skill],
        seniority_level="senior",
        industry_id=industry,
    )
    certification.certify(people.certifier, "job-roles", role, None, "r")
    team = people.create("teams", name="T", description="d", job_role_id=role)
    agent = people.create(
        "agents", name="A1", skill_id=skill, job_role_id=role, industry_id=industry, team_id=team
    )
    certification.certify(people.certifier, "agents", agent, None, "r")
    result = certification.certify(people.certifier, "teams", team, None, "r")
    assert result["entity"]["lifecycle"]["status"] == "certified"
    assert result["entity"]["relationships"]["agents"] == [agent]
    payload = base64.b64decode(result["certificate"]["payload"])
    assert canonical.loads(payload)["predicate"]["entity_type"] == "team"
