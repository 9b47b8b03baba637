"""How the Router picks a route and finishes a response, as its per-method index does it: the
first declared route of the request's method whose pattern matches answers, a path only other
methods match is a 405 naming them all, the caller's headers and query are read as sent, and a
per-caller answer gets ``Vary: Authorization`` beside any ``Vary`` its handler set."""

from __future__ import annotations

import json

import flask
import pytest

from shared.web.router import Call, Router, json_response


def _router() -> Router:
    router = Router("demo")

    @router.route("GET", "/things/special", public=True)
    def special(call: Call) -> flask.Response:
        return json_response({"route": "special"})

    @router.route("POST", "/things/<name>", public=True)
    def post_thing(call: Call, name: str) -> flask.Response:
        return json_response({"route": "post", "name": name})

    @router.route("GET", "/things/<name>", public=True, query=("q",))
    def get_thing(call: Call, name: str) -> flask.Response:
        return json_response({"route": "get", "name": name, "query": call.query})

    @router.route("PUT", "/things/<name>", public=True)
    def put_thing(call: Call, name: str) -> flask.Response:
        return json_response({"route": "put", "id": call.request_id})

    @router.route("GET", "/mine")
    def mine(call: Call) -> flask.Response:
        return json_response({"tenant": call.principal.tenant}, headers={"Vary": "Accept"})

    @router.route("GET", "/plain")
    def plain(call: Call) -> flask.Response:
        return json_response({"tenant": call.principal.tenant})

    return router


@pytest.fixture
def client():
    app = flask.Flask("router_dispatch")
    router = _router()
    app.add_url_rule(
        "/<path:rest>",
        "all",
        lambda rest: router.handle(flask.request),
        methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
    )
    return app.test_client()


def _body(response) -> dict:
    return json.loads(response.get_data())


def test_the_first_declared_route_of_the_method_answers(client):
    assert _body(client.get("/things/special"))["route"] == "special"
    assert _body(client.get("/demo/things/other")) == {"route": "get", "name": "other", "query": {}}
    assert _body(client.post("/things/special"))["route"] == "post"


def test_a_path_only_other_methods_take_is_a_405_naming_each_once(client):
    response = client.delete("/things/special")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST, PUT"
    assert client.patch("/nowhere").status_code == 404


def test_the_query_is_read_and_checked_when_one_is_sent(client):
    assert _body(client.get("/things/a?q=1"))["query"] == {"q": "1"}
    refused = client.get("/things/a?other=1")
    assert refused.status_code == 422 and b"other" in refused.get_data()
    assert client.get("/things/special?q=1").status_code == 422  # that route takes none


def test_the_request_id_is_the_callers_when_well_formed(client):
    assert (
        _body(client.put("/things/a", headers={"X-Request-Id": "abc-1.2:3"}))["id"] == "abc-1.2:3"
    )
    made = _body(client.put("/things/a", headers={"X-Request-Id": "bad id"}))["id"]
    assert made != "bad id" and len(made) == 36


def test_json_bodies_are_refused_unless_sent_as_json(registry_client, author):
    for content_type, status in (
        ("text/plain", 415),
        ("application/json; charset=utf-8", 201),
        ("Application/JSON", 201),
        ("application/merge-patch+json", 201),
    ):
        response = registry_client.post(
            "/registry/skills",
            data=json.dumps(
                {
                    "name": f"Typed {status} {content_type}",
                    "description": "d",
                    "category": "technical",
                }
            ),
            headers={**author, "Content-Type": content_type},
        )
        assert response.status_code == status, (content_type, response.get_data()[:300])


def test_per_caller_answers_vary_on_authorization_beside_the_handlers_own(client, bearer, tenant):
    plain = client.get("/plain", headers=bearer(tenant, "reader"))
    assert plain.status_code == 200
    assert plain.headers.getlist("Vary") == ["Authorization"]
    mine = client.get("/mine", headers=bearer(tenant, "reader"))
    assert mine.status_code == 200
    assert mine.headers.getlist("Vary") == ["Accept, Authorization"]
    public = client.get("/things/special")
    assert "Vary" not in public.headers
