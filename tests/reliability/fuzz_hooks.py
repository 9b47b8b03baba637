"""Schemathesis hooks for tests/reliability/test_fuzz_api.py (loaded by the `st` CLI through
SCHEMATHESIS_HOOKS; the test passes the tokens and seeded ids in PLANT_FUZZ_CONTEXT).

- Every request carries a real bearer token; the role rotates, so each operation is tried as
  an admin and as each single role (reader, author, certifier, auditor).
- Things that exist in the tenant (entities, versions, log indices, an audit run) become the
  path parameters' examples, which the examples and coverage phases send, and the fuzzing
  phase swaps them in now and then; an If-Match left at its example names the entity's
  current version. So fuzzed bodies and queries reach past "404 no such entity" and "412".
- Two extra checks: every 4xx/5xx is an RFC 9457 problem+json whose ``status`` is the
  response's, and every response carries the security headers.
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Any
from urllib.parse import quote, urlencode

import schemathesis
from hypothesis import strategies as st

CONTEXT: dict[str, Any] = json.loads(os.environ.get("PLANT_FUZZ_CONTEXT") or "{}")
TOKENS: dict[str, str] = CONTEXT.get("tokens", {})
# Admin reaches every operation; the single roles find the 403 paths and role mix-ups.
ROTATION = itertools.cycle(
    [r for role in TOKENS if role != "admin" for r in ("admin", role)] or ["admin"]
)
ENTITIES: list[dict[str, str]] = CONTEXT.get("entities", [])
RUNS: list[str] = CONTEXT.get("runs", [])
LOG_SIZE: int = CONTEXT.get("log_size", 1)
# Current version of each seeded entity, kept up to date from the writes' responses, so an
# If-Match left at the documents' example ("v1") names the current version and the body is
# what gets checked (a stale If-Match is refused before the body is read).
VERSIONS: dict[str, int] = dict(CONTEXT.get("versions", {}))
IF_MATCH_EXAMPLE = '"v1"'


@schemathesis.auth(refresh_interval=None)
class RotatingBearer:
    def get(self, case: Any, ctx: Any) -> str:
        return TOKENS[next(ROTATION)]

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def _existing(params: dict[str, Any]) -> list[dict[str, Any]]:
    """Copies of ``params`` whose ids name things that exist (the generated one is kept too)."""
    out = []
    if "entity_id" in params:
        for entity in ENTITIES:
            if "kind" in params:
                out.append({**params, "kind": entity["kind"], "entity_id": entity["id"]})
            elif entity["kind"] == "agents":  # /registry/agents/{entity_id}/team
                out.append({**params, "entity_id": entity["id"]})
        if "version" in params:
            out = [{**p, "version": v} for p in out for v in (1, 2)]
    if "run_id" in params:
        out += [{**params, "run_id": run} for run in RUNS]
    if "index" in params:
        out += [{**params, "index": i} for i in range(min(LOG_SIZE, 4))]
    return out


def _example_for(path: str, name: str) -> Any:
    by_kind = {e["kind"]: e["id"] for e in ENTITIES}
    # A status change may deprecate its entity: give it one of its own, so amendments and
    # reads keep reaching a live entity.
    kind = "teams" if path.endswith("/status") else "skills"
    if name == "entity_id" and by_kind:
        return by_kind["agents"] if "/agents/{entity_id}" in path else by_kind[kind]
    if name == "kind" and by_kind:
        return kind
    if name == "run_id" and RUNS:
        return RUNS[0]
    if name in ("index", "version"):
        return 1
    return None


@schemathesis.hook
def before_load_schema(context: Any, raw_schema: dict[str, Any]) -> None:
    """Existing things as the path parameters' examples: the examples and coverage phases
    then send their bodies and queries to entities that exist, not only to random ids."""
    for path, item in raw_schema.get("paths", {}).items():
        operations = [op for op in item.values() if isinstance(op, dict)]
        for parameter in [
            *item.get("parameters", []),
            *(p for op in operations for p in op.get("parameters", [])),
        ]:
            if parameter.get("in") != "path":
                continue
            value = _example_for(path, parameter["name"])
            if value is not None:
                parameter["example"] = value


@schemathesis.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
    choices = _existing(path_parameters or {})
    if not choices:
        return st.just(path_parameters)
    return st.one_of(st.just(path_parameters), st.sampled_from(choices))


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    entity = (case.path_parameters or {}).get("entity_id")
    headers = case.headers or {}
    if entity in VERSIONS and headers.get("If-Match") == IF_MATCH_EXAMPLE:
        case.headers = {**headers, "If-Match": f'"v{VERSIONS[entity]}"'}


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    if case.method.upper() not in ("POST", "PATCH") or not 200 <= response.status_code < 300:
        return
    try:
        body = json.loads(response.content)
        doc = body.get("entity", body)  # a certification returns the certified version
        VERSIONS[doc["identity"]["id"]] = int(doc["versioning"]["version"])
    except (ValueError, TypeError, KeyError, AttributeError):
        pass


# gunicorn (`plant serve`) refuses a request line over 4094 bytes itself, with its own HTML
# 414, before any of our code runs: such requests test gunicorn, not the functions.
MAX_URL = 3000


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    try:
        query = urlencode(case.query or {}, doseq=True)
        path = quote(case.formatted_path)
    except (TypeError, ValueError):
        return True
    return len(path) + len(query) <= MAX_URL


def _header(response: Any, name: str) -> str:
    values = response.headers.get(name.lower()) or [""]
    return values[0]


@schemathesis.check
def problem_json_errors(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every error is application/problem+json with the RFC 9457 members."""
    if response.status_code < 400:
        return None
    media = _header(response, "Content-Type").split(";")[0].strip().lower()
    if media != "application/problem+json":
        raise AssertionError(f"{response.status_code} sent as {media!r}, not problem+json")
    body = json.loads(response.content)
    missing = {"type", "title", "status", "detail"} - set(body)
    if missing:
        raise AssertionError(f"the problem lacks {sorted(missing)}")
    if body["status"] != response.status_code:
        raise AssertionError(f"problem status {body['status']} != {response.status_code}")
    return True


@schemathesis.check
def security_headers(ctx: Any, response: Any, case: Any) -> bool | None:
    if _header(response, "X-Content-Type-Options") != "nosniff":
        raise AssertionError("X-Content-Type-Options: nosniff is missing")
    if not _header(response, "Cache-Control"):
        raise AssertionError("Cache-Control is missing")
    return True
