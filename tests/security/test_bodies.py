"""Bodies are bodies: a chunked body is read exactly as a length-delimited one on every route
that takes one, an unreadable body is a 4xx problem+json, and a body is only read (let alone
parsed) once the caller is authenticated and holds the route's role.

Through functions_framework.create_app on the real main.py; tests/reliability/
test_request_bodies.py sends the same over raw sockets to a real `plant serve`."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from typing import Any

import flask
import pytest
from werkzeug.serving import DechunkedInput
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from shared.errors import ServiceUnavailable
from shared.web.bodies import MAX_BODY
from shared.web.router import Body, Router, json_response
from tests.support.reliability_table import record
from tests.support.routes import FRAMINGS, body_routes, send, served

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def admin(make_token, tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(tenant, 'admin', subject='root')}", **JSON}


@pytest.fixture
def skill_id(clients, make_token, tenant) -> str:
    author = {"Authorization": f"Bearer {make_token(tenant, 'author', subject='ann')}"}
    response = clients["registry"].post(
        "/registry/skills",
        json={"name": "Bodies", "description": "d", "category": "technical"},
        headers=author,
    )
    assert response.status_code == 201, response.json
    return response.json["identity"]["id"]


def _skill_write(**fields: Any) -> dict[str, Any]:
    return {"name": "Chunked", "description": "d", "category": "technical", **fields}


# For each route that takes a body: a body whose answer shows it was read (a 422 naming a
# field of it, where an ignored or empty body would get a 400, a 404 or a 201), and the
# field named. None of them writes anything.
PROBES: dict[tuple[str, str], tuple[dict[str, Any], str, dict[str, str]]] = {
    ("POST", "/registry/{kind}"): (_skill_write(name=""), "name", {}),
    ("POST", "/registry/{kind}/batch"): ({"items": [_skill_write(name="")]}, "items[0].name", {}),
    ("PATCH", "/registry/{kind}/{entity_id}"): (
        {"description": "", "amendment_reason": "r"},
        "description",
        {"If-Match": '"v1"'},
    ),
    ("POST", "/registry/{kind}/{entity_id}/status"): (
        {"status": "bogus", "reason": "r"},
        "status",
        {},
    ),
    ("POST", "/registry/agents/{entity_id}/team"): ({"team": None}, "team_id", {}),
    ("POST", "/certify/batch"): ({"items": []}, "items", {}),
    ("POST", "/certify/{kind}/{entity_id}"): ({"version": 0}, "version", {}),
    ("POST", "/audit/runs"): ({"mode": "bogus"}, "mode", {}),
}


def test_every_route_that_takes_a_body_has_a_probe():
    declared = {s.key for s in body_routes()}
    assert declared == set(PROBES), (
        f"routes taking a body without a probe here: {declared - set(PROBES)}; "
        f"probes of routes that take none: {set(PROBES) - declared}"
    )


def _violations(response) -> list[dict[str, Any]]:
    assert response.mimetype == "application/problem+json", response.get_data()[:300]
    return response.json.get("violations") or response.json.get("errors") or []


@pytest.mark.parametrize("route", body_routes(), ids=lambda s: f"{s.method} {s.template}")
def test_a_chunked_body_reads_as_a_length_delimited_one(clients, admin, skill_id, route, request):
    body, field, extra = PROBES[route.key]
    data = json.dumps(body).encode()
    url = route.url(entity_id=skill_id)
    answers = {}
    for framing in FRAMINGS:
        response = send(
            clients[route.function], route.method, url, data, framing, {**admin, **extra}
        )
        answers[framing] = (response.status_code, _violations(response))
    record(
        request.node,
        "chunked body on every body route (test client)",
        len(FRAMINGS),
        "read identically: same status and problem with Content-Length, chunked as gunicorn "
        "and werkzeug hand it over, and chunked as the test client does",
    )
    assert len(set(map(json.dumps, answers.values()))) == 1, answers
    status, violations = answers["content-length"]
    assert status == 422 and violations[0]["field"] == field, answers


@pytest.mark.parametrize("route", body_routes(), ids=lambda s: f"{s.method} {s.template}")
def test_a_body_over_the_limit_is_413_whatever_its_framing(clients, admin, route):
    data = b'{"x": "' + b"a" * MAX_BODY + b'"}'
    for framing in FRAMINGS:
        response = send(clients[route.function], route.method, route.url(), data, framing, admin)
        assert response.status_code == 413, (framing, response.get_data()[:300])
        assert response.json["limit"] == MAX_BODY


def test_a_body_cut_short_of_its_content_length_is_400(clients, admin):
    environ = EnvironBuilder("/audit/runs", method="POST", headers=admin).get_environ()
    environ.update({"CONTENT_LENGTH": "100", "wsgi.input": io.BytesIO(b'{"mode"')})
    response = clients["audit"].open(Request(environ))
    assert response.status_code == 400 and response.mimetype == "application/problem+json"
    assert "100 bytes" in response.json["detail"]


@pytest.mark.parametrize(
    "chunks",
    [b"zz\r\n{}\r\n0\r\n\r\n", b"5\r\n{}\r\n0\r\n\r\n", b"2\r\n{}"],
    ids=["bad size", "size past the data", "no last chunk"],
)
def test_broken_chunked_framing_is_400(clients, admin, chunks, request):
    # werkzeug's server de-chunks with DechunkedInput: its errors reach the app as it reads.
    builder = EnvironBuilder(
        "/audit/runs", method="POST", headers={**admin, "Transfer-Encoding": "chunked"}
    )
    environ = builder.get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ.update(
        {"wsgi.input": DechunkedInput(io.BytesIO(chunks)), "wsgi.input_terminated": True}
    )
    response = clients["audit"].open(Request(environ))
    record(request.node, "broken chunked framing (werkzeug)", 1, "400 problem+json, nothing run")
    assert response.status_code == 400, response.get_data()[:300]
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize(
    "headers",
    [
        {"Transfer-Encoding": "chunked", "Content-Length": "2"},
        {"Transfer-Encoding": "gzip"},
        {"Content-Length": "two"},
    ],
    ids=["both framings", "another coding", "length not a number"],
)
def test_ambiguous_framing_is_400(clients, admin, headers):
    environ = EnvironBuilder("/audit/runs", method="POST", headers=admin).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ.update({f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()})
    if "Content-Length" in headers:
        environ["CONTENT_LENGTH"] = environ.pop("HTTP_CONTENT_LENGTH")
    environ["wsgi.input"] = io.BytesIO(b"{}")
    response = clients["audit"].open(Request(environ))
    assert response.status_code == 400 and response.mimetype == "application/problem+json"


def test_the_attack_a_chunked_version_pin_is_read(clients, make_token, tenant, request):
    """Issue 20 #3: a chunked ``{"version": 1}`` certified v2, an amendment nobody reviewed."""
    registry, certify = clients["registry"], clients["certify"]
    ann = {"Authorization": f"Bearer {make_token(tenant, 'author', subject='ann')}"}
    bob = {"Authorization": f"Bearer {make_token(tenant, 'author', subject='bob')}"}
    carol = {"Authorization": f"Bearer {make_token(tenant, 'certifier', subject='carol')}"}
    created = registry.post("/registry/skills", json=_skill_write(), headers=ann).json
    skill = created["identity"]["id"]
    amended = registry.patch(
        f"/registry/skills/{skill}",
        json={"description": "changed", "amendment_reason": "r"},
        headers={**bob, "If-Match": '"v1"'},
    )
    assert amended.status_code == 200, amended.json
    pin = json.dumps({"version": 1}).encode()
    for framing in FRAMINGS:
        response = send(
            certify, "POST", f"/certify/skills/{skill}", pin, framing, {**carol, **JSON}
        )
        assert response.status_code == 409, (framing, response.status_code, response.json)
        assert response.json["current_version"] == 2
    record(
        request.node,
        "chunked version pin on POST /certify",
        len(FRAMINGS),
        "409 stale, nothing certified",
    )
    listed = certify.get(f"/certify/skills/{skill}/certificates", headers=carol).json
    assert listed["certificates"] == []


def test_the_attack_a_chunked_audit_mode_is_read(clients, make_token, tenant):
    auditor = {"Authorization": f"Bearer {make_token(tenant, 'auditor')}", **JSON}
    for framing in FRAMINGS:
        bogus = send(
            clients["audit"], "POST", "/audit/runs", b'{"mode": "bogus"}', framing, auditor
        )
        assert bogus.status_code == 422, (framing, bogus.json)
        full = send(clients["audit"], "POST", "/audit/runs", b'{"mode": "full"}', framing, auditor)
        assert full.status_code == 201 and full.json["mode"] == "full", (framing, full.json)


def test_a_chunked_create_writes_what_was_sent(clients, admin):
    for framing in FRAMINGS[1:]:
        name = f"Sent in chunks ({framing})"
        data = json.dumps(_skill_write(name=name)).encode()
        response = send(clients["registry"], "POST", "/registry/skills", data, framing, admin)
        assert response.status_code == 201, (framing, response.json)
        assert response.json["identity"]["name"] == name


@pytest.mark.parametrize(
    "route",
    [s for s in served() if s.route.body is Body.NONE],
    ids=lambda s: f"{s.method} {s.template}",
)
def test_a_route_that_takes_no_body_refuses_one(clients, admin, route):
    """Never silently ignored: a route that does not read a body says so (a new route that
    reads one without declaring it gets noticed by its first client)."""
    for framing in FRAMINGS:
        response = send(clients[route.function], route.method, route.url(), b"{}", framing, admin)
        assert response.status_code == 400, (
            framing,
            response.status_code,
            response.get_data()[:300],
        )
        assert "takes no body" in response.json["detail"]


GARBAGE: list[tuple[str, bytes, dict[str, str]]] = [
    ("integer of 5,000 digits", b'{"version": ' + b"9" * 5000 + b"}", JSON),
    ("not JSON", b"\xff{{{", JSON),
    ("not declared JSON", b"<xml/>", {"Content-Type": "text/xml"}),
    ("nested 50,000 deep", b"[" * 50_000, JSON),
]


@pytest.mark.parametrize(
    "route", [s for s in served() if not s.route.public], ids=lambda s: f"{s.method} {s.template}"
)
def test_garbage_without_a_token_is_401_before_any_parsing(clients, route, request):
    for _, data, headers in GARBAGE:
        for framing in FRAMINGS:
            response = send(
                clients[route.function], route.method, route.url(), data, framing, headers
            )
            assert response.status_code == 401, (framing, data[:20], response.get_data()[:300])
            assert response.mimetype == "application/problem+json"
    record(
        request.node,
        "garbage body without a token, every route",
        len(GARBAGE) * len(FRAMINGS),
        "401 before parsing",
    )


@pytest.mark.parametrize("route", body_routes(), ids=lambda s: f"{s.method} {s.template}")
def test_garbage_from_a_caller_without_the_role_is_403_before_any_parsing(
    clients, make_token, tenant, route
):
    reader = {"Authorization": f"Bearer {make_token(tenant, 'reader')}"}
    for _, data, headers in GARBAGE:
        response = clients[route.function].open(
            route.url(), method=route.method, data=data, headers={**reader, **headers}
        )
        assert response.status_code == 403, (data[:20], response.get_data()[:300])


def test_the_attack_a_huge_integer_without_a_token(clients):
    """Issue 20 #9: /audit/runs and /certify parsed the body before authenticating: a
    5,000-digit integer was a 500 without any token."""
    data = b'{"version": ' + b"9" * 5000 + b"}"
    for client, url in (
        (clients["audit"], "/audit/runs"),
        (clients["certify"], "/certify/skills/0b5e9a3c-6f1d-4c2a-9e8b-3d7f1a2c4e6b"),
    ):
        response = client.post(url, data=data, headers=JSON)
        assert response.status_code == 401, response.get_data()[:300]


class _Endless(io.RawIOBase):
    """A body that never ends, counting what the app takes of it."""

    taken = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        buffer[:] = b" " * len(buffer)
        self.taken += len(buffer)
        return len(buffer)


@pytest.mark.parametrize(
    "path", ["/registry/skills", "/registry/healthz", "/registry/no/such/route/x", "/robots.txt"]
)
@pytest.mark.parametrize("framing", ["50 MB Content-Length", "chunked, terminated by the server"])
def test_at_most_max_body_plus_one_bytes_are_ever_read(clients, path, framing, request):
    """functions_framework reads the rest of every body after the response (its own 404s
    included): that read is bounded too, whether the caller was refused or not."""
    stream = _Endless()
    environ = EnvironBuilder(path, method="POST", headers=JSON).get_environ()
    environ.update({"wsgi.input": stream, "wsgi.input_terminated": True})
    if framing.startswith("50"):
        environ["CONTENT_LENGTH"] = str(50 * 1024 * 1024)
    else:
        environ.pop("CONTENT_LENGTH", None)
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    response = clients["registry"].open(Request(environ))
    assert 400 <= response.status_code < 500
    record(
        request.node,
        "endless body (refused caller, unknown route, framework 404)",
        1,
        f"at most {MAX_BODY + 1} bytes read",
    )
    assert stream.taken <= MAX_BODY + 1, stream.taken


class _Counted(io.RawIOBase):
    """A body counting what the app takes of it."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.taken = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._data.readinto(buffer)
        self.taken += n
        return n


def test_a_routes_admission_is_taken_before_its_body_is_read(make_token, tenant):
    """A route may hold a slot (the registry's batch slots) from before its body is read until
    it answers: a caller refused a slot costs no read at all."""
    events: list[tuple[Any, ...]] = []
    stream = _Counted(b'{"a": 1}')

    @contextlib.contextmanager
    def admit(principal: Any) -> Iterator[None]:
        events.append(("admitted", principal.subject, stream.taken))
        if principal.subject == "refused":
            raise ServiceUnavailable("no slot free")
        yield
        events.append(("released",))

    router = Router("t")

    @router.route("POST", "/things", body=Body.JSON, admit=admit)
    def things(call: Any) -> Any:
        events.append(("handled", call.body))
        return json_response({})

    app = flask.Flask("t")
    for subject, status in (("refused", 503), ("admitted", 200)):
        stream = _Counted(b'{"a": 1}')
        token = make_token(tenant, "author", subject=subject)
        environ = {"wsgi.input": stream, "CONTENT_LENGTH": "8"}
        with app.test_request_context(
            "/t/things",
            method="POST",
            headers={"Authorization": f"Bearer {token}", **JSON},
            environ_overrides=environ,
        ):
            assert router.handle(flask.request).status_code == status
        if subject == "refused":
            assert stream.taken == 0
    assert events == [
        ("admitted", "refused", 0),
        ("admitted", "admitted", 0),
        ("handled", {"a": 1}),
        ("released",),
    ]
