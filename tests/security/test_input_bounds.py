"""No 500 from input: integers of any length in a body or a query, cursors of any value, and
bodies built to make the error itself huge all get a small 4xx problem+json naming the field.

Through functions_framework.create_app on the real main.py."""

from __future__ import annotations

import base64
import json

import pytest

import main
from shared.errors import MAX_LISTED
from shared.integrity import canonical
from shared.rules.query_params import MAX_INTEGER
from shared.web import openapi
from tests.support.reliability_table import record
from tests.support.routes import body_routes

JSON = {"Content-Type": "application/json"}
BIG = "9" * 5000


@pytest.fixture
def admin(make_token, tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(tenant, 'admin', subject='root')}", **JSON}


def _problem(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data()[:300])
    assert response.mimetype == "application/problem+json"
    return response.json


@pytest.mark.parametrize("route", body_routes(), ids=lambda s: f"{s.method} {s.template}")
def test_an_integer_of_5000_digits_is_422_naming_the_field(clients, admin, route, request):
    cases = [
        (f'{{"big": {BIG}}}', "big"),
        (f'{{"big": -{BIG}}}', "big"),
        (f'{{"items": [{{"kind": "skills", "version": {BIG}}}]}}', "items[0].version"),
        (f"{BIG}", ""),
        (f'{{"ok": 1, "small": {2**53}}}', "small"),
    ]
    for body, field in cases:
        response = clients[route.function].open(
            route.url(), method=route.method, data=body, headers={**admin, "If-Match": '"v1"'}
        )
        problem = _problem(response, 422)
        assert problem["errors"][0]["field"] == field, problem
        assert problem["limit"] == canonical.MAX_SAFE_INTEGER
        assert len(response.get_data()) < 2000
    record(
        request.node,
        "integer of 5,000 digits in every JSON route",
        len(cases),
        "422 naming the field, 0 5xx",
    )


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


CURSORS = [
    "aTkyMjMzNzIwMzY4NTQ3NzU4MDg",  # the issue's: i9223372036854775808, one past bigint
    _cursor(f"i{2**64}"),
    _cursor("i" + BIG),
    _cursor("i-1"),
    _cursor("i"),
    _cursor("i\u0661"),  # an Arabic-Indic digit passes str.isdigit()
    _cursor("x12"),
    "!!",
    "%FF%FE",
    "a" * 5000,
]


@pytest.mark.parametrize("value", CURSORS)
def test_a_cursor_of_any_value_is_422_naming_it(clients, admin, value, request):
    response = clients["registry"].get(f"/registry/skills?cursor={value}", headers=admin)
    problem = _problem(response, 422)
    assert problem["errors"][0]["field"] == "cursor"
    record(
        request.node, "cursor above 2^63-1 or not one we issued", 1, "422 naming `cursor`, 0 5xx"
    )


def test_the_largest_cursor_is_read(clients, admin):
    response = clients["registry"].get(
        f"/registry/skills?cursor={_cursor(f'i{MAX_INTEGER}')}", headers=admin
    )
    assert response.status_code == 200 and response.json["items"] == []


# Every integer query parameter, with a query that makes the rest of the request valid.
INTEGER_PARAMETERS = {
    ("/registry/{kind}", "limit"): "/registry/skills?",
    ("/registry/{kind}/{entity_id}/similar", "limit"): (
        "/registry/skills/00000000-0000-4000-8000-000000000000/similar?"
    ),
    ("/audit/runs", "limit"): "/audit/runs?",
    ("/log/checkpoints", "size"): "/log/checkpoints?",
    ("/log/proofs/inclusion", "index"): "/log/proofs/inclusion?size=1&",
    ("/log/proofs/inclusion", "size"): "/log/proofs/inclusion?index=0&",
    ("/log/proofs/consistency", "old"): "/log/proofs/consistency?new=1&",
    ("/log/proofs/consistency", "new"): "/log/proofs/consistency?old=1&",
}
BAD_INTEGERS = ["0", "-1", "x", "1e2", "%C2%B2", "%D9%A1", "+5", " 1", str(2**63), BIG]


def test_the_table_holds_every_integer_query_parameter():
    described = {
        (path, p["name"])
        for function in main.FUNCTIONS
        for path, item in openapi.document(function)["paths"].items()
        for op in item.values()
        if isinstance(op, dict)
        for p in op.get("parameters", [])
        if p["in"] == "query" and p["schema"].get("type") == "integer"
    }
    assert described == set(INTEGER_PARAMETERS)


@pytest.mark.parametrize("where", sorted(INTEGER_PARAMETERS), ids=lambda w: f"{w[0]} {w[1]}")
def test_a_bad_integer_parameter_is_422_naming_it(clients, admin, where, request):
    _, name = where
    prefix = INTEGER_PARAMETERS[where]
    function = prefix.split("/")[1]
    statuses = set()
    for value in BAD_INTEGERS:
        if value == "0" and name in ("index",):
            continue  # index 0 is a valid index
        response = clients[function].get(f"{prefix}{name}={value}", headers=admin)
        problem = _problem(response, 422)
        assert name in [e["field"] for e in problem["errors"]], (value, problem)
        statuses.add(response.status_code)
    record(
        request.node,
        "bad integer query parameter (0, -1, non-ASCII digits, 2^63, 5,000 digits)",
        len(BAD_INTEGERS),
        "422 naming the parameter, one status for all",
    )
    assert statuses == {422}


def test_limit_zero_and_limit_past_the_maximum_get_the_same_status(clients, admin):
    """Issue 20 #9: limit=0 was a 400 and limit=501 a 422."""
    for url in ("/registry/skills?limit=", "/audit/runs?limit="):
        function = url.split("/")[1]
        low = clients[function].get(url + "0", headers=admin)
        high = clients[function].get(url + "501", headers=admin)
        assert low.status_code == high.status_code == 422, (url, low.json, high.json)


def test_a_megabyte_of_unknown_keys_gets_a_small_422(clients, admin, request):
    """Issue 20 #11: a 1 MiB batch of unknown keys got a 12 MB 422."""
    item = {f"k{i}": 0 for i in range(2000)}
    items = [item] * 40
    body = json.dumps({"items": items})
    assert 900_000 < len(body) < 1024 * 1024
    response = clients["registry"].post("/registry/skills/batch", data=body, headers=admin)
    problem = _problem(response, 422)
    size = len(response.get_data())
    record(
        request.node,
        "1 MiB batch of unknown keys",
        1,
        f"422 of {size} bytes listing {MAX_LISTED} violations and the count left out",
    )
    assert size < 64 * 1024, size
    assert len(problem["violations"]) == MAX_LISTED
    assert problem["violations_omitted"] > 80_000


def test_a_key_a_megabyte_long_gets_a_small_422(clients, admin):
    body = json.dumps(
        {"name": "x", "description": "d", "category": "technical", "k" * 1_000_000: 1}
    )
    response = clients["registry"].post("/registry/skills", data=body, headers=admin)
    problem = _problem(response, 422)
    assert len(response.get_data()) < 4096
    assert problem["violations"][0]["field"].startswith("kkkk")


def test_a_duplicate_key_a_megabyte_long_gets_a_small_400(clients, admin):
    key = "k" * 500_000
    response = clients["registry"].post(
        "/registry/skills", data=f'{{"{key}": 1, "{key}": 2}}', headers=admin
    )
    _problem(response, 400)
    assert len(response.get_data()) < 4096
