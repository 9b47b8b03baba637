"""What a caller may ask of the audit: its modes and the runs page sizes, apart from the
auditor so that the OpenAPI documents and the CLI can name them without loading it."""

from __future__ import annotations

from typing import Any

from shared.errors import ValidationFailed

MODES = ("incremental", "full")
RUNS_PAGE = 20
MAX_RUNS_PAGE = 100


def mode(body: Any) -> str:
    """The mode a run's request body asks for (none: incremental)."""
    if body is None:
        return "incremental"
    if not isinstance(body, dict) or set(body) - {"mode"}:
        raise ValidationFailed(
            "invalid body",
            [{"rule": "INPUT-04", "field": "", "message": "only 'mode' may be sent"}],
        )
    asked = body.get("mode", "incremental")
    if asked not in MODES:
        raise ValidationFailed(
            "invalid mode",
            [{"rule": "INPUT-02", "field": "mode", "message": f"must be one of {list(MODES)}"}],
        )
    return asked
