"""The audit re-checks four eyes on content (L0-06) over the log: a certificate the registry
would have refused, written behind its back, is a rule_violation naming the entity, the
certified version, the certificate's log index and the certifier."""

from __future__ import annotations

import pytest

from shared import audit, tlog
from shared.registry import certification, writes
from shared.rules import four_eyes
from shared.security.principal import Principal
from tests.support.reliability_table import record


def _certify_behind_the_rule(monkeypatch, tenant: str, skill: str, subject: str) -> int:
    """``subject`` certifies the skill with the four-eyes check switched off (an insider
    running the registry's own code); returns the certificate's log index."""
    with monkeypatch.context() as patched:
        patched.setattr(four_eyes, "content_authors", lambda versions, certified: [])
        done = certification.certify(
            Principal(subject, tenant, frozenset({"certifier"})), "skills", skill, None, "r"
        )
    tlog.seal(tenant)
    return done["certificate_log_index"]


def _laundered(history) -> str:
    """A skill alice wrote and bob moved to pending_certification (version 2)."""
    skill = history.skills[2]
    writes.change_status(
        Principal("bob", history.tenant, frozenset({"author"})),
        "skills",
        skill,
        {"status": "pending_certification", "reason": "ready"},
        None,
        "r",
    )
    return skill


def _expected(skill: str, index: int) -> dict:
    """The finding's named fields: alice certified version 2, her own content."""
    return {
        "kind": "rule_violation",
        "rule": four_eyes.RULE,
        "entity_type": "skill",
        "entity_id": skill,
        "version": 2,
        "log_index": index,
        "certifier": "alice",
        "content_authors": ["alice"],
    }


def _named(finding: dict) -> dict:
    return {k: finding[k] for k in _expected("", 0)}


@pytest.mark.parametrize("mode", ["full", "incremental"])
def test_a_certificate_by_the_content_author_is_a_finding(request, history, monkeypatch, mode):
    history.audit("full")  # clean: the incremental run starts after it
    skill = _laundered(history)
    index = _certify_behind_the_rule(monkeypatch, history.tenant, skill, "alice")
    run = history.audit(mode)
    assert [_named(f) for f in run["findings"]] == [_expected(skill, index)]
    assert "alice" in run["findings"][0]["detail"]
    report = audit.entity_report(history.auditor, "skills", skill)
    assert [_named(f) for f in report["findings"]] == [_expected(skill, index)]
    record(
        request.node,
        "four eyes: certificate by the content's author written behind the API's back",
        1,
        "audit finding rule_violation L0-06 naming entity, version, log index, certifier",
    )


def test_the_finding_is_the_same_from_the_workers(history, monkeypatch, pooled, full_audit):
    skill = _laundered(history)
    index = _certify_behind_the_rule(monkeypatch, history.tenant, skill, "alice")
    alone = full_audit(history, 1)["findings"]
    workers = full_audit(history, 2)["findings"]
    assert alone == workers
    assert [_named(f) for f in workers] == [_expected(skill, index)]


def test_a_certificate_of_content_another_wrote_is_no_finding(history, monkeypatch):
    skill = _laundered(history)
    _certify_behind_the_rule(monkeypatch, history.tenant, skill, "bob")
    assert history.audit("full")["findings"] == []
