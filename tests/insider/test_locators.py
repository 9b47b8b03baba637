"""Locators forged to blame ``identity.name`` for a change to ``description`` (issue 22): the
per-field digests beside a row are not signed, so the audit names the entry, entity and
version that changed and says the field cannot be named; nothing in any finding blames the
name."""

from __future__ import annotations

import pytest

from shared.audit import versions
from tests.insider import cases_ledger
from tests.support.reliability_table import record


@pytest.mark.insider_short
def test_forged_locators_name_no_field(fixture_tenant, attack, request):
    t = fixture_tenant
    index = t.index(t.skills[6], 2)
    cases_ledger.forged_locators(t, attack)
    for n, mode in enumerate(("incremental", "full", "incremental")):
        found = t.audit(mode)["findings"]
        if n == 0 and not found:
            continue  # the first incremental starts past the prefix verified clean
        assert [(f["kind"], f["log_index"], f["version"], f["section"], f["field"]) for f in found
                ] == [("altered", index, 2, None, None)], (mode, found)  # fmt: skip
        assert found[0]["field_unnamed"] == versions.UNNAMED
        assert "name" not in found[0]["detail"].replace("cannot name", "").replace(
            "cannot be named", ""
        ), found
    record(request.node, "insider: log_entries: locators forged to blame identity.name", 1,
           "altered entry, field null with field_unnamed")  # fmt: skip
