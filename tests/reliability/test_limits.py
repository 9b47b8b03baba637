"""Every input limit, at the limit and one past it: at the limit the limit itself never refuses
the request; one past it the answer is a problem+json 4xx that names the field and the limit,
and nothing is written: 413 for sizes in bytes and batches, 422 for everything else.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from shared.audit.params import MAX_RUNS_PAGE
from shared.integrity import canonical
from shared.registry import certification, reads
from shared.rules import kinds
from shared.web.router import MAX_BODY
from tests.support.reliability_table import record


@dataclass
class Api:
    clients: dict[str, Any]
    tokens: dict[str, str]
    skill: str  # an existing skill (version 1), for amendments and status changes

    def send(self, method: str, path: str, body: Any = None, raw: bytes | None = None, **h):
        function = path.split("/")[1]
        role = {"certify": "certifier", "audit": "auditor"}.get(function, "author")
        headers = {"Authorization": f"Bearer {self.tokens[role]}", **h}
        data = raw if raw is not None else None if body is None else json.dumps(body)
        if data is not None:
            headers["Content-Type"] = "application/json"
        return self.clients[function].open(path, method=method, data=data, headers=headers)


@dataclass
class Limit:
    name: str  # the row in the reliability table
    limit: int
    field: str  # the field, query parameter or problem member that names the limit
    status: int  # one past the limit
    request: Callable[[Api, int], Any]  # sends a request carrying ``n`` of the limited thing
    accepted: bool = True  # at the limit the request succeeds (else: fails for another reason)


def _skill(**extra: Any) -> dict[str, Any]:
    return {"name": f"lim-{uuid.uuid4().hex[:10]}", "description": "d", "category": "technical"}


def _with(**extra: Any) -> Callable[[Api, int], Any]:
    """POST a skill with one field built from ``n``."""

    def send(api: Api, n: int) -> Any:
        body = _skill()
        for key, build in extra.items():
            body[key] = build(n)
        return api.send("POST", "/registry/skills", body)

    return send


def _sized_body(api: Api, n: int) -> Any:
    """A skill whose JSON body is exactly ``n`` bytes (padded in external_id)."""
    body = _skill()
    body["external_id"] = ""
    pad = n - len(json.dumps(body).encode())
    body["external_id"] = "e" * pad
    raw = json.dumps(body).encode()
    assert len(raw) == n
    return api.send("POST", "/registry/skills", raw=raw)


def _nested_attributes(n: int) -> dict[str, Any]:
    """custom_attributes whose depth, as the registry counts it, is ``n``."""
    value: Any = "leaf"
    for _ in range(n - 1):
        value = {"k": value}
    return value


def _attributes_of_bytes(n: int) -> dict[str, Any]:
    value = {"k": ""}
    value["k"] = "a" * (n - len(canonical.dumps(value)))
    assert len(canonical.dumps(value)) == n
    return value


def _ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def _job_role(api: Api, n: int) -> Any:
    body = {**_skill(), "required_skills": _ids(n), "seniority_level": "mid"}
    del body["category"]
    return api.send("POST", "/registry/job-roles", body)


def _amendment(api: Api, n: int) -> Any:
    current = api.send("GET", f"/registry/skills/{api.skill}").headers["ETag"]
    body = {"description": uuid.uuid4().hex, "amendment_reason": "r" * n}
    return api.send("PATCH", f"/registry/skills/{api.skill}", body, **{"If-Match": current})


def _status_reason(api: Api, n: int) -> Any:
    status = api.send("GET", f"/registry/skills/{api.skill}").json["lifecycle"]["status"]
    target = "pending_certification" if status == "draft" else "draft"  # both allowed moves
    body = {"status": target, "reason": "r" * n}
    return api.send("POST", f"/registry/skills/{api.skill}/status", body)


def _batch(api: Api, n: int) -> Any:
    items = [{"kind": "skills", "id": i} for i in _ids(n)]
    return api.send("POST", "/certify/batch", {"items": items})


def _nested_body(api: Api, n: int) -> Any:
    return api.send("POST", "/registry/skills", raw=("[" * n + "]" * n).encode())


LIMITS = [
    Limit("request body size", MAX_BODY, "limit", 413, _sized_body, accepted=False),
    Limit("name length", kinds.MAX_NAME, "name", 422, _with(name=lambda n: "n" * n)),
    Limit(
        "description length",
        kinds.MAX_DESCRIPTION,
        "description",
        422,
        _with(description=lambda n: "d" * n),
    ),
    Limit(
        "external_id length", kinds.MAX_SHORT, "external_id", 422, _with(external_id="x".__mul__)
    ),
    Limit("tag length", kinds.MAX_TAG, "tags[0]", 422, _with(tags=lambda n: ["t" * n])),
    Limit(
        "tags per entity",
        kinds.MAX_TAGS,
        "tags",
        422,
        _with(tags=lambda n: [f"t{i}" for i in range(n)]),
    ),
    Limit(  # at the limit: refused because those skills do not exist
        "required_skills per job role",
        kinds.MAX_ID_LIST,
        "required_skills",
        422,
        _job_role,
        accepted=False,
    ),
    Limit(
        "custom_attributes keys",
        kinds.MAX_ATTRIBUTES,
        "custom_attributes",
        422,
        _with(custom_attributes=lambda n: {f"k{i}": i for i in range(n)}),
    ),
    Limit(
        "custom_attributes size (bytes)",
        kinds.MAX_ATTRIBUTES_BYTES,
        "custom_attributes",
        422,
        _with(custom_attributes=_attributes_of_bytes),
    ),
    Limit(
        "custom_attributes nesting depth",
        kinds.MAX_DEPTH,
        "custom_attributes",
        422,
        _with(custom_attributes=_nested_attributes),
    ),
    Limit("amendment_reason length", kinds.MAX_REASON, "amendment_reason", 422, _amendment),
    Limit("status change reason length", kinds.MAX_REASON, "reason", 422, _status_reason),
    Limit("certification batch size", certification.MAX_BATCH, "items", 422, _batch),
    Limit(
        "page size (registry ?limit=)",
        reads.MAX_PAGE,
        "limit",
        422,
        lambda api, n: api.send("GET", f"/registry/skills?limit={n}"),
    ),
    Limit(
        "page size (audit runs ?limit=)",
        MAX_RUNS_PAGE,
        "limit",
        422,
        lambda api, n: api.send("GET", f"/audit/runs?limit={n}"),
    ),
    Limit(
        "category filter length",
        reads.MAX_CATEGORY,
        "category",
        422,
        lambda api, n: api.send("GET", f"/registry/skills?category={'c' * n}"),
    ),
    Limit(  # at the limit: refused because a list is not an object
        "JSON nesting depth",
        canonical.MAX_DEPTH,
        "detail",
        422,
        _nested_body,
        accepted=False,
    ),
]


@pytest.fixture
def api(clients, tenant, make_token) -> Api:
    tokens = {
        "author": make_token(tenant, "author", "reader", subject="alice"),
        "certifier": make_token(tenant, "certifier", "reader", subject="carol"),
        "auditor": make_token(tenant, "auditor", "reader", subject="audrey"),
    }
    made = Api(clients, tokens, "")
    response = made.send("POST", "/registry/skills", _skill())
    assert response.status_code == 201, response.json
    made.skill = response.json["identity"]["id"]
    return made


def _names_the_limit(problem: dict[str, Any], limit: Limit) -> bool:
    """The problem names the field (a violation or query error) and the limit's number."""
    number = str(limit.limit)
    if limit.field == "limit" and limit.status == 413:
        return problem.get("limit") == limit.limit and number in problem["detail"]
    if limit.field == "detail":
        return number in problem["detail"]
    named = [*problem.get("violations", []), *problem.get("errors", [])]
    return any(v.get("field") == limit.field and number in v.get("message", "") for v in named)


def _entries(superuser, tenant: str) -> int:
    with superuser.connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM log_entries WHERE tenant_id = :t"), {"t": tenant}
        ).scalar_one()


@pytest.mark.parametrize("limit", LIMITS, ids=[limit.name for limit in LIMITS])
def test_each_limit_is_enforced_at_its_edge(api, superuser, tenant, limit, request):
    at = limit.request(api, limit.limit)
    if limit.accepted:
        assert at.status_code < 300, at.json
    else:  # refused for another reason, never for this limit
        assert at.status_code >= 400 and not _names_the_limit(at.json, limit), at.json
    written = _entries(superuser, tenant)
    over = limit.request(api, limit.limit + 1)
    problem = over.json
    record(
        request.node,
        f"limit: {limit.name} ({limit.limit}) exceeded by one",
        1,
        f"{over.status_code} problem+json naming "
        + ("the limit in its detail" if limit.field == "detail" else f"`{limit.field}`"),
    )
    assert over.status_code == limit.status, problem
    assert over.mimetype == "application/problem+json"
    assert problem["status"] == limit.status
    assert _names_the_limit(problem, limit), problem
    assert _entries(superuser, tenant) == written, "a refused request wrote something"
