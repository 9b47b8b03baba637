"""Each function loads only its own code, and the offline verifier no database code: what a
fresh interpreter has in ``sys.modules`` after importing them."""

from __future__ import annotations

import pytest

import main
from tests.support.interpreter import modules_after

# What the log function must not load: the audit, but for the names every problem type uses
# (its findings' kinds) and the parameters the OpenAPI documents name, which the package's
# lazy __init__ lets a function import alone.
AUDIT = ("shared.audit",)
AUDIT_VOCABULARY = ("shared.audit", "shared.audit.findings", "shared.audit.params")
PDF = ("shared.evidence.pdf", "fpdf")
REGISTRY_WRITES = (
    "shared.registry.writes",
    "shared.registry.batches",
    "shared.registry.versions",
    "shared.registry.certification",
    "shared.storage.group",
)
DATABASE_AND_WEB = ("sqlalchemy", "pg8000", "flask")


def _under(loaded: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [m for m in loaded if any(m == p or m.startswith(p + ".") for p in prefixes)]


@pytest.mark.parametrize("function", main.FUNCTIONS)
def test_a_function_loads_no_other_functions_document(function):
    loaded = modules_after(
        f"import functions.{function}\n"
        f"from shared.web import openapi\nopenapi.document({function!r})"
    )
    others = [f"shared.web.openapi.{f}" for f in main.FUNCTIONS if f != function]
    assert f"functions.{function}" in loaded
    assert _under(loaded, tuple(others)) == []


def test_the_log_function_loads_no_audit_pdf_or_registry_write_path():
    loaded = modules_after('import functions.log\nfunctions.log.openapi.document("log")')
    found = {
        "audit": [m for m in _under(loaded, AUDIT) if m not in AUDIT_VOCABULARY],
        "pdf": _under(loaded, PDF),
        "registry write path": _under(loaded, REGISTRY_WRITES),
    }
    assert not any(found.values()), f"functions.log loads {found}"


def test_plant_verify_loads_no_database_or_web_framework():
    # as `plant verify` and `plant verify-receipt` do (shared/cli/commands.py: cmd_verify)
    loaded = modules_after(
        "from shared import cli\ncli.parser()\n"
        "from shared.evidence import verify\nfrom shared.cli.progress import Progress\n"
        "from shared.evidence import receipt"
    )
    assert "shared.evidence.verify" in loaded and "shared.evidence.receipt" in loaded
    heavy = sorted({m.partition(".")[0] for m in _under(loaded, DATABASE_AND_WEB)})
    assert heavy == [], f"plant verify loads {heavy}"
