"""Each function's OpenAPI 3.1 document: it describes exactly the routes its Router serves, is
valid against the OpenAPI 3.1 meta-schema, and is served without a token at
``GET /<function>/openapi.json`` with the usual security headers."""

from __future__ import annotations

import importlib
import re

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

import main
from shared.web import openapi
from shared.web.router import Body

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
PARAM = re.compile(r"\(\?P<(\w+)>(?:\[\^/\]\+|\.\+)\)")
PROTECTED = {
    "registry": "/registry/skills",
    "log": "/log/checkpoint",
    "certify": "/certify/rules",
    "audit": "/audit/runs",
    "export": "/export/report",
}
# C2SP tlog-witness: a log calls add-checkpoint with no token (the log's signature on the
# checkpoint authenticates it), and its 409 body is the witness's size as text/x.tlog.size.
SIGNED_BY_THE_LOG = {("POST", "/witness/add-checkpoint")}
PROTOCOL_ANSWERS = {("post", "/witness/add-checkpoint", 409)}


def served_routes(function: str) -> set[tuple[str, str]]:
    """(METHOD, /function/path/{param}) for every route the function's Router declares."""
    router = importlib.import_module(f"functions.{function}").router
    out = set()
    for route in router.routes:
        source = route.pattern.pattern
        assert source.startswith("^/") and source.endswith("$"), source
        path = PARAM.sub(r"{\1}", source[1:-1])
        assert "(" not in path and "\\" not in path, f"unexpected pattern {source}"
        out.add((route.method.upper(), f"/{function}{path}"))
    return out


def described_routes(spec: dict) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }


def test_every_function_has_a_document():
    assert set(openapi.FUNCTIONS) == set(main.FUNCTIONS)


@pytest.mark.parametrize("function", main.FUNCTIONS)
def test_document_describes_exactly_the_routes_served(function):
    served = served_routes(function)
    described = described_routes(openapi.document(function))
    assert served, "the router declares no route"
    assert not served - described, f"served but not in the OpenAPI document: {served - described}"
    assert not described - served, f"in the OpenAPI document but not served: {described - served}"


def test_route_comparison_notices_a_missing_path():
    spec = openapi.document("registry")
    del spec["paths"]["/registry/{kind}/{entity_id}/versions"]
    missing = served_routes("registry") - described_routes(spec)
    assert missing == {("GET", "/registry/{kind}/{entity_id}/versions")}


@pytest.mark.parametrize("function", main.FUNCTIONS)
def test_document_is_valid_openapi_3_1(function):
    spec = openapi.document(function)
    assert spec["openapi"].startswith("3.1.")
    errors = [e.message for e in OpenAPIV31SpecValidator(spec).iter_errors()]
    assert errors == []


def test_validator_rejects_a_broken_document():
    spec = openapi.document("log")
    del spec["paths"]["/log/entries/{index}"]["get"]["parameters"]
    spec["paths"]["/log/seal"]["post"]["responses"]["200"] = {"content": {}}  # no description
    assert list(OpenAPIV31SpecValidator(spec).iter_errors())


@pytest.mark.parametrize("function", main.FUNCTIONS)
def test_every_operation_documents_its_errors_as_problem_json(function):
    spec = openapi.document(function)
    problems = spec["components"]["responses"]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            public = op.get("security") == []
            signed = (method.upper(), path) in SIGNED_BY_THE_LOG
            assert public == (path.endswith(("/healthz", "/openapi.json")) or signed)
            codes = {int(c) for c in op["responses"]}
            if not public:
                assert 401 in codes, (method, path)
            for code in codes:
                if code < 400 or (method, path, code) in PROTOCOL_ANSWERS:
                    continue
                name = op["responses"][str(code)]["$ref"].rsplit("/", 1)[1]
                content = problems[name]["content"]
                assert list(content) == ["application/problem+json"], (method, path, code)


@pytest.mark.parametrize("function", main.FUNCTIONS)
def test_an_operation_taking_query_parameters_documents_their_422_and_no_400(function):
    """A bad query parameter is a 422 invalid-query on every route (the export routes'
    included), never a 400, so each GET that takes one says 422 and none says 400."""
    for path, item in openapi.document(function)["paths"].items():
        op = item.get("get")
        if op and any(p["in"] == "query" for p in op.get("parameters", ())):
            assert "422" in op["responses"] and "400" not in op["responses"], path


def test_request_limits_come_from_the_input_rules():
    from shared.rules.kinds import KINDS, MAX_ID_LIST, MAX_NAME, MAX_REASON, MAX_TAGS

    schemas = openapi.document("registry")["components"]["schemas"]
    skill = schemas["SkillCreate"]
    assert set(skill["properties"]) == {f.name for f in KINDS["skills"].fields}
    assert set(skill["required"]) == {"name", "description", "category"}
    assert skill["properties"]["name"]["maxLength"] == MAX_NAME
    assert skill["properties"]["tags"]["maxItems"] == MAX_TAGS
    assert skill["additionalProperties"] is False
    assert schemas["AgentCreate"]["properties"]["description"]["type"] == ["string", "null"]
    roles = schemas["JobRoleCreate"]["properties"]["required_skills"]
    assert roles["maxItems"] == MAX_ID_LIST and roles["minItems"] == 1
    amendment = schemas["AgentAmendment"]
    assert amendment["required"] == ["amendment_reason"]
    assert amendment["properties"]["amendment_reason"]["maxLength"] == MAX_REASON
    status = schemas["StatusChange"]["properties"]["status"]["enum"]
    assert "certified" not in status and "deprecated" in status


@pytest.mark.parametrize("function", main.FUNCTIONS)
def test_document_is_served_without_a_token(clients, function):
    response = clients[function].get(f"/{function}/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Server-Timing" in response.headers
    assert response.json == openapi.document(function)
    # the function's other routes still want one (the witness's: a log-signed checkpoint)
    if function == "witness":
        refused = clients[function].post("/witness/add-checkpoint", data=b"old 0\n\n")
        assert refused.status_code == 400 and refused.mimetype == "application/problem+json"
    else:
        assert clients[function].get(PROTECTED[function]).status_code == 401


@pytest.mark.parametrize("function", main.FUNCTIONS)
def test_the_routes_served_without_a_token_are_those_the_document_calls_public(function):
    """The README names them too: healthz and the OpenAPI document, nothing else."""
    router = importlib.import_module(f"functions.{function}").router
    served_public = {
        (route.method, PARAM.sub(r"{\1}", f"/{function}{route.pattern.pattern[1:-1]}"))
        for route in router.routes
        if route.public
    }
    described_public = {
        (method.upper(), path)
        for path, item in openapi.document(function)["paths"].items()
        for method, op in item.items()
        if method in METHODS and op.get("security") == []
    }
    expected = {("GET", f"/{function}/healthz"), ("GET", f"/{function}/openapi.json")}
    expected |= {route for route in SIGNED_BY_THE_LOG if route[1].startswith(f"/{function}/")}
    assert served_public == described_public == expected


@pytest.mark.parametrize("function", main.FUNCTIONS)
def test_a_body_is_described_exactly_where_a_route_takes_one(function):
    router = importlib.import_module(f"functions.{function}").router
    spec = openapi.document(function)
    for route in router.routes:
        path = PARAM.sub(r"{\1}", f"/{function}{route.pattern.pattern[1:-1]}")
        body = spec["paths"][path][route.method.lower()].get("requestBody")
        if route.body is Body.NONE:
            assert body is None, (route.method, path)
        else:
            assert body is not None, (route.method, path)
            required = route.body in (Body.JSON, Body.RAW)
            assert body["required"] is required, (route.method, path)
