"""Audits: prove that nothing in a tenant's log was altered, deleted, inserted or re-ordered
since it was checkpointed, or name exactly what was.

A run (``runs``) seals a new checkpoint, checks every checkpoint signature and the anchor
store (``checkpoints``), then recomputes the leaf of every entry in range from its stored
bytes and rebuilds the tree root from them (``entries``, one entry's checks in
``versions``), with the stored subtree hashes for the part verified before on an incremental
run, and checks per-entity chains (``chains``), certificates (``certificates``), heads
(``heads``) and rules (``rules``). The passes share one ``state.AuditState``; a full audit's
long passes may run in worker processes (``workers``), or in processes that share only the
anchor store, each scanning a part of the log, joined by a merge (``parts``). Work and reads
are proportional to the range plus O(log n).

The operations below load the auditor when first named (PEP 562), so that a module that
needs only the modes, page sizes or finding kinds does not.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from shared.audit.findings import KINDS, Finding
from shared.audit.params import MAX_RUNS_PAGE, MODES, RUNS_PAGE

if TYPE_CHECKING:
    from shared.audit.report import entity_report
    from shared.audit.runs import get_run, list_runs, run

__all__ = [
    "KINDS",
    "MAX_RUNS_PAGE",
    "MODES",
    "RUNS_PAGE",
    "Finding",
    "entity_report",
    "get_run",
    "list_runs",
    "run",
]

_LAZY = {
    "run": "shared.audit.runs",
    "get_run": "shared.audit.runs",
    "list_runs": "shared.audit.runs",
    "entity_report": "shared.audit.report",
}


def __getattr__(name: str) -> Any:
    """The operations, imported when first named: most importers need only the constants."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
