"""OpenAPI 3.1 descriptions of the five functions, served at ``GET /<function>/openapi.json``.

The documents are data built from the constants the code itself checks (kinds and their
fields, length and count limits, statuses, formats), so a limit changed in one place changes
in the description too. Every route a function's Router serves is described here, and
tests/functions/test_openapi.py fails when the two differ.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from shared.openapi.paths import (
    DESCRIPTIONS,
    PATHS,
    RETRY_AFTER,
    common_paths,
    path_parameter_problems,
)
from shared.openapi.schemas import PROBLEM, PROBLEMS, SCHEMAS, ref

OPENAPI_VERSION = "3.1.0"
API_VERSION = "0.1.0"
FUNCTIONS = tuple(PATHS)


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


def _components(paths: dict[str, Any]) -> dict[str, Any]:
    """Only the components the paths use (transitively)."""
    responses = {
        name: {
            "description": description,
            "content": {PROBLEM: {"schema": ref("Problem")}},
            **({"headers": RETRY_AFTER} if code == 503 else {}),
        }
        for code, (name, description) in PROBLEMS.items()
    }
    pool = {"schemas": SCHEMAS, "responses": responses}
    used: dict[str, dict[str, Any]] = {"schemas": {}, "responses": {}}
    pending = _refs(paths)
    while pending:
        target = pending.pop()
        _, _, section, name = target.split("/")
        if name in used[section]:
            continue
        used[section][name] = pool[section][name]
        pending |= _refs(pool[section][name])
    return {
        "schemas": dict(sorted(used["schemas"].items())),
        "responses": dict(sorted(used["responses"].items())),
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "Locally, an EdDSA-signed JWT from `plant token` (claims: sub, "
                "tenant, roles); in the cloud, the caller's Google ID token. Roles: reader, "
                "author, certifier, auditor, admin.",
            }
        },
    }


@cache
def _build(function: str) -> dict[str, Any]:
    paths = path_parameter_problems({**common_paths(function), **PATHS[function]()})
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": f"Plant registry: {function}",
            "version": API_VERSION,
            "description": DESCRIPTIONS[function]
            + " Errors are RFC 9457 application/problem+json.",
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": _components(paths),
    }


def document(function: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of one function (a fresh copy: callers may change it)."""
    if function not in PATHS:
        raise KeyError(function)
    return copy.deepcopy(_build(function))
