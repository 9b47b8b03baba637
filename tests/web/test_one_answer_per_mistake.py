"""One answer per kind of mistake (issue #23, point 6), through the real apps: a bad query
parameter is a 422 naming it; a path parameter that cannot name anything is a 422 naming it,
apart from one that names nothing (404); a version the entity does not have is "no such
version"; the caller's role is decided before the body is read; an unmatched route is the
project's own problem; an amendment that changes nothing is refused and writes nothing."""

from __future__ import annotations

import uuid

import pytest
from werkzeug.test import Client

from shared.config import ROOT
from shared.errors import PROBLEM_BASE
from tests.support.reliability_table import record
from tests.support.routes import served

UNKNOWN = "0b5e9a3c-6f1d-4c2a-9e8b-3d7f1a2c4e6b"
MALFORMED_IDS = ["not-a-uuid", UNKNOWN.replace("-", ""), UNKNOWN + "0", "%C2%B2"]


@pytest.fixture(scope="module")
def clients(database_url):
    import functions_framework

    return {
        name: functions_framework.create_app(
            target=name, source=str(ROOT / "main.py")
        ).test_client()
        for name in ("registry", "log", "certify", "audit", "export")
    }


@pytest.fixture
def admin(make_token, tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(tenant, 'admin', subject='root')}"}


def _problem(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data()[:400])
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["type"].startswith(PROBLEM_BASE) and body["status"] == status, body
    return body


def _named(response, status: int, field: str) -> dict:
    body = _problem(response, status)
    assert [e["field"] for e in body["errors"]] == [field], body
    return body


# ---- query parameters --------------------------------------------------------------------

BAD_QUERIES = [
    ("registry", "/registry/skills", "limit", ["0", "501", "x", "-1"]),
    ("registry", "/registry/skills", "cursor", ["not-ours"]),
    ("registry", "/registry/skills", "colour", ["red"]),
    ("audit", "/audit/runs", "limit", ["0", "1000000", "x"]),
    ("log", "/log/checkpoints", "size", ["0", "x"]),
    ("log", "/log/proofs/consistency?old=1", "new", ["0", "x"]),
]


@pytest.mark.parametrize(("function", "path", "name", "values"), BAD_QUERIES)
def test_every_bad_query_parameter_is_a_422_naming_it(
    clients, admin, function, path, name, values, request
):
    for value in values:
        sep = "&" if "?" in path else "?"
        response = clients[function].get(f"{path}{sep}{name}={value}", headers=admin)
        _named(response, 422, name)
    record(request.node, f"bad query parameter {name} ({function})", len(values), "422 naming it")


# ---- path parameters ---------------------------------------------------------------------


def _id_routes() -> list:
    return [s for s in served() if "{entity_id}" in s.template or "{run_id}" in s.template]


@pytest.mark.parametrize("route", _id_routes(), ids=lambda s: f"{s.method} {s.template}")
def test_a_malformed_id_is_a_422_naming_id_and_an_unknown_one_404(clients, admin, route, request):
    """Before: 404 "no such entity" for both, so a client could not tell a typo from a
    deleted entity."""
    client = clients[route.function]
    body = {"status": "deprecated", "reason": "r"} if route.template.endswith("/status") else {}
    if route.template.endswith("/team"):
        body = {"team_id": None}
    headers = {**admin, "If-Match": '"v1"'}
    for raw in MALFORMED_IDS:
        url = route.url(entity_id=raw, run_id=raw)
        response = client.open(url, method=route.method, json=body, headers=headers)
        if route.method == "GET":
            response = client.get(url, headers=headers)
        named = _named(response, 422, "id")
        assert named["type"] == PROBLEM_BASE + "invalid-path-parameter"
    unknown = (
        client.get(route.url(), headers=headers)
        if route.method == "GET"
        else client.open(route.url(), method=route.method, json=body, headers=headers)
    )
    assert _problem(unknown, 404)["type"] == PROBLEM_BASE + "not-found"
    record(request.node, "malformed id in the path", len(MALFORMED_IDS), "422 naming id, not 404")


def test_a_malformed_log_index_is_a_422_naming_it(clients, admin):
    for raw in ("x", "-1", "1.0", "%C2%B2"):
        _named(clients["log"].get(f"/log/entries/{raw}", headers=admin), 422, "index")
    _problem(clients["log"].get(f"/log/entries/{'9' * 30}", headers=admin), 404)
    _problem(clients["log"].get("/log/entries/999999", headers=admin), 404)


def _two_versions(clients, admin) -> str:
    made = clients["registry"].post(
        "/registry/skills",
        json={"name": f"Two {uuid.uuid4()}", "description": "d", "category": "technical"},
        headers=admin,
    )
    assert made.status_code == 201, made.get_json()
    skill = made.get_json()["identity"]["id"]
    amended = clients["registry"].patch(
        f"/registry/skills/{skill}",
        json={"description": "e", "amendment_reason": "clearer"},
        headers={**admin, "If-Match": '"v1"'},
    )
    assert amended.status_code == 200, amended.get_json()
    return skill


def test_a_version_the_entity_does_not_have_is_no_such_version(clients, admin, make_token, tenant):
    """Before: certifying {"version": 99} of a two-version entity said "version 99 is stale"."""
    skill = _two_versions(clients, admin)
    certifier = {"Authorization": f"Bearer {make_token(tenant, 'certifier', subject='carol')}"}
    missing = clients["certify"].post(
        f"/certify/skills/{skill}", json={"version": 99}, headers=certifier
    )
    body = _problem(missing, 404)
    assert "no such version" in body["detail"] and "stale" not in body["detail"], body
    assert body["current_version"] == 2
    stale = clients["certify"].post(
        f"/certify/skills/{skill}", json={"version": 1}, headers=certifier
    )
    assert "stale" in _problem(stale, 409)["detail"]
    for suffix in ("", "/proof"):
        got = clients["registry"].get(
            f"/registry/skills/{skill}/versions/99{suffix}", headers=admin
        )
        _problem(got, 404)
        bad = clients["registry"].get(
            f"/registry/skills/{skill}/versions/v2{suffix}", headers=admin
        )
        _named(bad, 422, "version")


# ---- authorization before the body -------------------------------------------------------


@pytest.mark.parametrize(
    "route",
    [s for s in served() if s.route.roles and "reader" not in s.route.roles],
    ids=lambda s: f"{s.method} {s.template}",
)
def test_a_reader_without_a_content_type_is_403_not_415(
    clients, make_token, tenant, route, request
):
    reader = {"Authorization": f"Bearer {make_token(tenant, 'reader')}"}
    response = clients[route.function].open(
        route.url(), method=route.method, data=b"version=1", headers=reader
    )
    assert _problem(response, 403)["type"] == PROBLEM_BASE + "forbidden"
    record(request.node, "reader posting without Content-Type", 1, "403 before 415")


# ---- unmatched routes --------------------------------------------------------------------


def test_every_unmatched_route_is_the_projects_problem(clients, admin, request):
    """Under `plant serve`'s dispatcher, under each function's create_app, and for each
    function's own unknown paths (its Router, and the runtime's robots.txt)."""
    from functions import local

    paths = ("/", "/nowhere", "/registry-x/skills", "/registry/no/such/route")
    answers = [Client(local.app).get(path, headers=admin) for path in paths]
    for name, client in clients.items():
        for path in ("/", "/robots.txt", "/favicon.ico", f"/{name}/no/such/route"):
            answers.append(client.get(path, headers=admin))
    answers.append(clients["registry"].get("/registry/gadgets", headers=admin))  # unknown kind
    for response in answers:
        assert _problem(response, 404)["type"] == PROBLEM_BASE + "not-found"
    record(request.node, "unmatched routes", len(answers), "404 problem+json of our own type")


# ---- an amendment that changes nothing ---------------------------------------------------


def test_an_amendment_that_changes_nothing_is_refused_and_writes_nothing(
    clients, admin, certified_skill, request
):
    """Before: an amendment_reason alone appended a version identical to the last one, and
    took the certified entity back to pending_certification."""
    skill = certified_skill("Unchanged")
    before = clients["registry"].get(f"/registry/skills/{skill}", headers=admin)
    versions = before.get_json()["versioning"]["version"]
    etag = before.headers["ETag"]
    for body in (
        {"amendment_reason": "nothing really"},
        {"description": "d", "category": "technical", "amendment_reason": "same again"},
    ):
        response = clients["registry"].patch(
            f"/registry/skills/{skill}", json=body, headers={**admin, "If-Match": etag}
        )
        violations = _problem(response, 422)["violations"]
        assert [(v["rule"], v["field"]) for v in violations] == [("INPUT-06", "")], violations
    after = clients["registry"].get(f"/registry/skills/{skill}", headers=admin).get_json()
    assert after["versioning"]["version"] == versions
    assert after["lifecycle"]["status"] == "certified"
    listed = clients["registry"].get(f"/registry/skills/{skill}/versions", headers=admin)
    assert len(listed.get_json()["versions"]) == versions
    record(request.node, "amendment that changes nothing", 2, "422 INPUT-06, no version written")
