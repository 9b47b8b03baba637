"""A full audit's heads checked in worker processes (``shared.audit.heads.parallel.check_heads``),
range by range of first index, find exactly what one process finds: the same findings in the same
order, for each attack on a head, with every range two entries long so that an entity's
versions, its head and the heads that point at one entry lie in different ranges."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError

from shared import audit, config, tlog
from shared.audit.heads import parallel
from shared.registry import certification, writes
from tests.support.tampering import status_past_the_cascade


@pytest.fixture
def parts(pooled) -> list[parallel.HeadsChecked]:
    return pooled(parallel, "heads_checked")


@pytest.fixture
def both(full_audit, parts) -> Callable[[Any], list[dict[str, Any]]]:
    """The findings of one process, checked equal to those of two workers, which checked
    the heads of every range of the log."""

    def audit(history) -> list[dict[str, Any]]:
        alone = full_audit(history, 1)
        assert parts == []
        pooled = full_audit(history, 2)
        size = pooled["verified_to"]  # the log's size, the first run's report included
        ranges = [(i, min(i + 2, size)) for i in range(0, size, 2)]
        assert [(p.low, p.high) for p in parts] == ranges
        assert pooled["findings"] == alone["findings"]
        return alone["findings"]

    return audit


def _head(attack, history, change: str, entity_id: str, **params: Any) -> None:
    attack(
        f"UPDATE entity_heads SET {change} WHERE tenant_id = :t AND entity_id = CAST(:e AS uuid)",
        t=history.tenant,
        e=entity_id,
        **params,
    )


def _create(history, slug: str, **fields: Any) -> str:
    return writes.create(history.author, slug, fields, str(uuid.uuid4())).body["identity"]["id"]


def _altered_heads(findings: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [
        (f["entity_id"], f["field"])
        for f in findings
        if f["kind"] == "altered" and f.get("section") == "entity_heads"
    ]


def test_a_clean_log_is_clean_with_heads_in_workers(history, parts, both):
    assert both(history) == []
    # handed back: the heads of the amended and the certified skill, whose entries lie in
    # two ranges; the third skill's was checked in its worker, with nothing to tell
    back = [o[0][3].decode() for p in parts for o in p.outcomes if o[0] is not None]
    assert sorted(back) == sorted(history.skills[:2])
    assert all(o[0] is not None for p in parts for o in p.outcomes)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ("status = 'deprecated'", "status"),
        ("name = 'Elsewhere'", "name"),
        ("category = 'soft_skill'", "category"),
        ("unique_key = 'other'", "unique_key"),
        ("version = 7", "version"),
        ("kind = 'agent'", "kind"),
    ],
)
def test_an_edited_head_column_is_named_alike(history, attack, change, field, both):
    target = history.skills[2]  # all of it in one range: checked in a worker
    _head(attack, history, change, target)
    findings = both(history)
    assert (target, field) in _altered_heads(findings), findings


def test_a_head_moved_into_another_range_is_named_alike(history, attack, both):
    """Its first index rewritten to a range that does not hold the entity: that range's
    worker hands it back, and the audit checks it against the entity's summary."""
    target = history.skills[2]
    _head(attack, history, "first_index = 0", target)
    findings = both(history)
    assert _altered_heads(findings) == [(target, "first_index")], findings


def test_a_head_moved_back_a_version_is_found_alike(history, attack, entry_indices, both):
    amended = history.skills[0]  # versions in two ranges: the audit's own to check
    first = entry_indices(history.tenant, amended)[0]
    _head(attack, history, "version = 1, log_index = :i", amended, i=first)
    findings = both(history)
    assert [(f["kind"], f["entity_id"]) for f in findings] == [("rollback", amended)], findings


def test_a_head_pointing_at_anothers_entry_after_its_finding_is_skipped_alike(
    history, attack, parts, entry_indices, both
):
    """Two heads checked in two workers: the first one's finding reports its entry's
    index, so one process skips the later head pointing at that entry too; the second
    worker, which cannot know, reports that head, and the audit drops what it found."""
    named = history.skills[2]  # wholly in the range [2, 4)
    pointing = _create(history, "skills", name="Zig", description="d", category="technical")
    tlog.seal(history.tenant)
    entry = entry_indices(history.tenant, named)[0]
    assert entry // 2 != entry_indices(history.tenant, pointing)[0] // 2
    _head(attack, history, "status = 'suspended'", named)
    _head(attack, history, "log_index = :i", pointing, i=entry)
    findings = both(history)
    assert _altered_heads(findings) == [(named, "status")], findings
    dropped = [o for p in parts for o in p.outcomes if o[0] is None and o[3]]
    assert [(o[1], o[3][0][3]) for o in dropped] == [(entry, pointing)]


def test_a_head_planted_in_the_log_and_outside_it_is_found_alike(history, attack, both):
    for first_index in (1, 10_000):
        attack(
            "INSERT INTO entity_heads (tenant_id, entity_id, kind, version, status, name, "
            "category, unique_key, first_index, log_index, created_at, updated_at) VALUES "
            "(:t, CAST(:e AS uuid), 'skill', 1, 'draft', 'Planted', 'technical', "
            ":k, :f, 1, now(), now())",
            t=history.tenant,
            e=str(uuid.uuid4()),
            f=first_index,
            k=f"planted-{first_index}",
        )
    findings = both(history)
    assert [f["field"] for f in findings if f.get("section") == "entity_heads"] == [
        "log_index",
        "log_index",
    ], findings


def test_rules_over_heads_checked_in_workers_are_found_alike(history, both):
    """Certified job roles in two ranges whose required skill was deprecated after them
    (past the certification cascade, which would have suspended them): each is a rule
    violation, named in the order their heads were read."""
    skill = history.skills[1]  # certified
    roles = [
        _create(
            history,
            "job-roles",
            name=name,
            description="d",
            required_skills=[skill],
            seniority_level="mid",
        )
        for name in ("Dev", "Ops", "QA")
    ]
    for role in roles:
        certification.certify(history.certifier, "job-roles", role, None, "r")
    status_past_the_cascade(history.author, "skills", skill, "deprecated")
    tlog.seal(history.tenant)
    findings = both(history)
    named = [f["entity_id"] for f in findings if f.get("rule") == "L1-REF-02"]
    assert named == roles, findings


def test_a_head_whose_version_1_was_deleted_is_found_alike(history, attack, entry_indices, both):
    """Both versions of a skill in one range, the first deleted: that range's summary does
    not know where version 1 was, so its worker hands the head back for the ledger."""
    target = _create(history, "skills", name="Zig", description="d", category="technical")
    history.amend(target, 1, "writes Zig")
    tlog.seal(history.tenant)
    first, second = entry_indices(history.tenant, target)
    assert first // 2 == second // 2
    attack("DELETE FROM log_entries WHERE tenant_id = :t AND idx = :i", t=history.tenant, i=first)
    findings = both(history)
    assert ("missing", first) in {(f["kind"], f.get("log_index")) for f in findings}, findings
    assert _altered_heads(findings) == [(target, "first_index")], findings


def test_a_heads_worker_that_fails_fails_the_audit(history, pooled, monkeypatch, last_run_status):
    """The entries pass done, the heads handed to workers that cannot read the audit's
    snapshot: the run is marked failed and the error raised, never a completed audit whose
    heads were not all checked."""
    handed = parallel.heads_checked

    def unreadable(workers, tenant, snapshot, *rest):
        return handed(workers, tenant, "00000003-0000001B-1", *rest)

    monkeypatch.setattr(parallel, "heads_checked", unreadable)
    monkeypatch.setenv("PLANT_AUDIT_WORKERS", "2")
    config.settings.cache_clear()
    with pytest.raises(DBAPIError, match="snapshot"):
        audit.run(history.auditor, {"mode": "full"})
    assert last_run_status(history.tenant) == "failed"
