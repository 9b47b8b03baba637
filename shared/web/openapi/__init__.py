"""OpenAPI 3.1 descriptions of the six functions, served at ``GET /<function>/openapi.json``.

The documents are data built from the constants the code itself checks (kinds and their
fields, length and count limits, statuses, formats), so a limit changed in one place changes
in the description too. Every route a function's Router serves is described here, and
tests/web/test_openapi.py fails when the two differ.

Each function's document is its own module (``shared.web.openapi.<function>``), imported
only when that document is asked for: a function loads the constants of its own code only.
"""

from __future__ import annotations

import copy
import importlib
from functools import cache
from typing import Any

FUNCTIONS = ("registry", "log", "certify", "audit", "export", "witness")

__all__ = ["FUNCTIONS", "document"]


@cache
def _built(function: str) -> dict[str, Any]:
    return importlib.import_module(f"{__name__}.{function}").document()


def document(function: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of one function (a fresh copy: callers may change it)."""
    if function not in FUNCTIONS:
        raise KeyError(function)
    return copy.deepcopy(_built(function))
