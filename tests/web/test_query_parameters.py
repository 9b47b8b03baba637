"""Every route declares the query parameters it takes, the names its OpenAPI operation
documents, and the Router refuses any other on every route (issue #23, point 6): a 422
``invalid-query`` naming it, after authentication and before the handler or the body, so no
parameter is silently ignored and nothing is written."""

from __future__ import annotations

import pytest

from shared.errors import PROBLEM_BASE
from shared.web import openapi
from tests.support.reliability_table import record
from tests.support.routes import served

ROUTES = served()


def _documented(route) -> set[str]:
    op = openapi.document(route.function)["paths"][route.template][route.method.lower()]
    return {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}


@pytest.mark.parametrize("route", ROUTES, ids=lambda s: f"{s.method} {s.template}")
def test_the_declared_query_parameters_are_those_the_document_names(route):
    assert set(route.route.query) == _documented(route), (route.method, route.template)
    assert len(set(route.route.query)) == len(route.route.query), "a name declared twice"


def _unknown_named(response, *names: str) -> None:
    assert response.status_code == 422, (response.status_code, response.get_data()[:400])
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["type"] == f"{PROBLEM_BASE}invalid-query", body
    assert body["errors"] == [
        {"field": name, "message": "unknown query parameter"} for name in names
    ], body


def test_an_unknown_query_parameter_is_refused_on_every_route(clients, make_token, tenant, request):
    refused = 0
    for route in ROUTES:
        token = make_token(tenant, "admin", *route.route.roles)
        client = clients[route.function]
        response = client.open(
            f"{route.url()}?x=1", method=route.method, headers={"Authorization": f"Bearer {token}"}
        )
        _unknown_named(response, "x")
        refused += 1
    assert refused == len(ROUTES)
    record(
        request.node,
        "unknown query parameter on every route",
        len(ROUTES),
        f"422 invalid-query naming it on {refused} of {len(ROUTES)} routes",
    )


@pytest.mark.parametrize("function", ["registry", "log", "certify", "audit", "export", "witness"])
def test_public_routes_refuse_an_unknown_parameter_without_a_token(clients, function):
    for path in ("openapi.json", "healthz", "healthz?details=0"):
        sep = "&" if "?" in path else "?"
        _unknown_named(clients[function].get(f"/{function}/{path}{sep}x=1"), "x")
    assert clients[function].get(f"/{function}/healthz?details=0").status_code == 200


def test_every_unknown_parameter_is_named_beside_the_ones_the_route_takes(
    clients, make_token, tenant
):
    reader = {"Authorization": f"Bearer {make_token(tenant, 'reader')}"}
    response = clients["registry"].get("/registry/skills?colour=red&limit=5&x=1", headers=reader)
    _unknown_named(response, "colour", "x")
    log = clients["log"].get("/log/entries/0?x=1&index=0", headers=reader)
    _unknown_named(log, "x", "index")


def test_the_query_is_checked_after_authentication(clients):
    response = clients["log"].get("/log/entries/0?x=1")
    assert response.status_code == 401, response.get_data()[:400]


def test_a_write_with_an_unknown_parameter_writes_nothing(clients, make_token, tenant):
    author = {"Authorization": f"Bearer {make_token(tenant, 'author', 'reader')}"}
    registry = clients["registry"]
    skill = {"name": "Queried", "description": "d", "category": "technical"}
    _unknown_named(registry.post("/registry/skills?x=1", json=skill, headers=author), "x")
    listed = registry.get("/registry/skills", headers=author)
    assert listed.status_code == 200 and listed.json["total"] == 0, listed.json
    certifier = {"Authorization": f"Bearer {make_token(tenant, 'certifier', 'reader')}"}
    created = registry.post("/registry/skills", json=skill, headers=author)
    assert created.status_code == 201, created.json
    entity = created.json["identity"]["id"]
    refused = clients["certify"].post(f"/certify/skills/{entity}?x=1", headers=certifier)
    _unknown_named(refused, "x")
    certificates = clients["certify"].get(f"/certify/skills/{entity}/certificates", headers=author)
    assert certificates.status_code == 200, certificates.json
    assert certificates.json["certificates"] == [], certificates.json
