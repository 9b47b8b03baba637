"""Four eyes on content (L0-06): a certifier may not certify content they wrote or amended
since it was last certified; a status change by someone else does not launder it."""

from __future__ import annotations

import uuid

from shared.registry import certification, reads, writes
from shared.security.principal import Principal
from shared.storage import ledger
from shared.storage.engine import database
from tests.support.reliability_table import record

L0_06 = "L0-06"


def _as(certify_client, make_token, tenant: str, subject: str):
    headers = {"Authorization": f"Bearer {make_token(tenant, 'certifier', subject=subject)}"}

    def post(path: str, **kwargs):
        return certify_client.post(path, headers=headers, **kwargs)

    return post


def _move(who: Principal, skill: str, status: str) -> None:
    writes.change_status(who, "skills", skill, {"status": status, "reason": "r"}, None, "r")


def _written(tenant: str, skill: str) -> tuple[int, int, str]:
    """How many versions and certificates the skill has, and its status."""
    with database().transaction(tenant) as conn:
        versions = ledger.version_entries(conn, skill)
        certificates = ledger.certificate_entries(conn, skill)
    status = reads.get(Principal("x", tenant, frozenset({"reader"})), "skills", skill)
    return len(versions), len(certificates), status.body["lifecycle"]["status"]


def _refused_by_four_eyes(response) -> None:
    assert response.status_code == 403, response.json
    assert response.mimetype == "application/problem+json"
    problem = response.json
    assert problem["type"].endswith("/forbidden")
    assert [v["rule"] for v in problem["violations"]] == [L0_06]
    assert "alice" in problem["detail"]


def bob(tenant: str) -> Principal:
    return Principal("bob", tenant, frozenset({"author"}))


def test_a_status_change_by_another_author_does_not_launder_authorship(
    request, people, certify_client, make_token
):
    skill = people.skill()  # alice wrote it
    _move(bob(people.tenant), skill, "pending_certification")  # bob only moved its status
    before = _written(people.tenant, skill)
    response = _as(certify_client, make_token, people.tenant, "alice")(f"/certify/skills/{skill}")
    _refused_by_four_eyes(response)
    assert _written(people.tenant, skill) == before == (2, 0, "pending_certification")
    record(
        request.node,
        "four eyes: status change by another author launders authorship",
        1,
        "403 problem naming L0-06, nothing written",
    )


def test_an_amendment_moved_back_to_draft_by_another_author_is_still_refused(
    request, people, certify_client, make_token
):
    skill = people.skill()
    certification.certify(people.certifier, "skills", skill, None, "r")  # carol: v2 certified
    writes.amend(
        people.author, "skills", skill, {"description": "e", "amendment_reason": "x"}, '"v2"', "r"
    )  # alice amends the certified content: v3 pending_certification
    _move(bob(people.tenant), skill, "draft")  # v4, bob's status change
    before = _written(people.tenant, skill)
    response = _as(certify_client, make_token, people.tenant, "alice")(f"/certify/skills/{skill}")
    _refused_by_four_eyes(response)
    assert _written(people.tenant, skill) == before == (4, 1, "draft")
    record(
        request.node,
        "four eyes: amendment of certified content, then a status change by another author",
        1,
        "403 problem naming L0-06, nothing written",
    )


def test_a_certifier_may_certify_content_only_another_wrote(people, certify_client, make_token):
    """bob moved the status of what alice wrote: he wrote no content, so he may certify it;
    the certificate says whose content it certifies."""
    skill = people.skill()
    _move(bob(people.tenant), skill, "pending_certification")
    response = _as(certify_client, make_token, people.tenant, "bob")(f"/certify/skills/{skill}")
    assert response.status_code == 201, response.json
    checks = {c["check"]: c for c in response.json["statement"]["predicate"]["checks"]}
    assert checks[L0_06]["result"] == "pass"
    assert "alice" in checks[L0_06]["message"]
    assert _written(people.tenant, skill) == (3, 1, "certified")


def test_every_content_author_since_the_last_certification_counts(
    people, certify_client, make_token
):
    """alice wrote v1, carol certified it, bob amended it: bob may not certify the
    amendment, alice (whose content was certified already) may."""
    skill = people.skill()
    certification.certify(people.certifier, "skills", skill, None, "r")
    writes.amend(
        bob(people.tenant),
        "skills",
        skill,
        {"description": "e", "amendment_reason": "x"},
        '"v2"',
        "r",
    )
    refused = _as(certify_client, make_token, people.tenant, "bob")(f"/certify/skills/{skill}")
    assert refused.status_code == 403
    assert [v["rule"] for v in refused.json["violations"]] == [L0_06]
    allowed = _as(certify_client, make_token, people.tenant, "alice")(f"/certify/skills/{skill}")
    assert allowed.status_code == 201, allowed.json


def test_recertifying_unchanged_content_after_a_suspension(people, certify_client, make_token):
    """Content certified once and only suspended since has no author since its last
    certification: alice, who wrote it, may certify it again; its amendment by her may not."""
    skill = people.skill()
    certification.certify(people.certifier, "skills", skill, None, "r")
    _move(bob(people.tenant), skill, "suspended")
    alice = _as(certify_client, make_token, people.tenant, "alice")
    assert alice(f"/certify/skills/{skill}").status_code == 201
    writes.amend(
        people.author, "skills", skill, {"description": "e", "amendment_reason": "x"}, '"v4"', "r"
    )
    assert alice(f"/certify/skills/{skill}").status_code == 403


def test_a_batch_obeys_four_eyes_item_by_item(request, people, certify_client, make_token):
    other = Principal("bob", people.tenant, frozenset({"author"}))
    by_bob = [
        writes.create(
            other,
            "skills",
            {"name": f"b {uuid.uuid4().hex[:6]}", "description": "d", "category": "technical"},
            "r",
        ).body["identity"]["id"]
        for _ in range(2)
    ]
    laundered = people.skill()
    _move(other, laundered, "pending_certification")
    items = [{"kind": "skills", "id": i} for i in (by_bob[0], laundered, by_bob[1])]
    response = _as(certify_client, make_token, people.tenant, "alice")(
        "/certify/batch", json={"items": items}
    )
    assert response.status_code == 200, response.json
    results = response.json["results"]
    assert [r["status"] for r in results] == [201, 403, 201]
    assert [v["rule"] for v in results[1]["problem"]["violations"]] == [L0_06]
    assert _written(people.tenant, laundered) == (2, 0, "pending_certification")
    record(
        request.node,
        "four eyes: laundered authorship inside a certification batch",
        1,
        "that item 403 naming L0-06, nothing written for it; the others 201",
    )
