"""Every attack of the insider's matrix (tests/insider/test_matrix.py) found alike by the full
audit with the compiled heads map and with its pure-Python twin: the same findings in the same
order (``tests.audit.test_compiled_twin.audit_both_ways``). The matrix's short slice runs in
the default suite, the rest with ``make test-insider`` / ``make test-slow``."""

from __future__ import annotations

import pytest

from tests.audit.test_compiled_twin import audit_both_ways
from tests.insider import cases_catalog, cases_ledger, test_matrix
from tests.insider.attacks import Case
from tests.insider.conftest import Tenant


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            c,
            id=f"{c.table}: {c.name}",
            marks=[pytest.mark.insider_short if c.short else pytest.mark.slow],
        )
        for c in test_matrix.CASES + cases_ledger.CASES + cases_catalog.CASES
    ],
)
def test_attack_is_found_alike_compiled_and_pure(
    case: Case, fixture_tenant: Tenant, attack, monkeypatch
) -> None:
    case.attack(fixture_tenant, attack)
    try:
        audit_both_ways(fixture_tenant.name, monkeypatch)
    finally:
        if case.undo is not None:
            case.undo(fixture_tenant, attack)
