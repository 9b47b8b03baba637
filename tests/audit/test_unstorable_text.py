"""A version holding text the registry refuses at input (a NUL, which PostgreSQL's jsonb
cannot hold), written by an insider through the registry's own ledger functions: its bytes
are in the tree, and the audit still names it, by entity, version, index and field path."""

from __future__ import annotations

import pytest

from shared import audit, tlog
from tests.support.reliability_table import record
from tests.support.tampering import append_unchecked


def _expected(history, index: int, field: str) -> tuple:
    return ("rule_violation", "INPUT-02", history.skills[0], 3, index, "metadata", field)


def _named(findings: list[dict]) -> list[tuple]:
    return [
        (
            f["kind"],
            f["rule"],
            f["entity_id"],
            f["version"],
            f["log_index"],
            f["section"],
            f["field"],
        )
        for f in findings
    ]


@pytest.mark.parametrize(
    ("attributes", "field"),
    [
        ({"x": "\u0000"}, "custom_attributes.x"),
        ({"a": [{"\u0000": 1}]}, 'custom_attributes.a[0]["\\u0000"]'),
    ],
)
def test_a_nul_written_past_the_checks_is_a_finding(request, history, attributes, field):
    index = append_unchecked(
        history.author, "skills", history.skills[0], custom_attributes=attributes
    )
    tlog.seal(history.tenant)
    for mode in ("incremental", "full"):
        run = history.audit(mode)
        assert _named(run["findings"]) == [_expected(history, index, field)], run["findings"]
    report = audit.entity_report(history.auditor, "skills", history.skills[0])
    assert _named(report["findings"]) == [_expected(history, index, field)]
    record(
        request.node,
        "NUL in a version written past the input checks (insider)",
        1,
        "audit finding rule_violation INPUT-02 naming entity, version, index and field path",
    )


def test_the_finding_is_the_same_from_the_workers(history, pooled, full_audit):
    index = append_unchecked(
        history.author, "skills", history.skills[0], custom_attributes={"x": "\u0000"}
    )
    tlog.seal(history.tenant)
    alone = full_audit(history, 1)["findings"]
    assert alone == full_audit(history, 2)["findings"]
    assert _named(alone) == [_expected(history, index, "custom_attributes.x")]
