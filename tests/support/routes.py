"""Every route the five functions' Routers declare, for tests that must cover all of them (and
fail when a new one appears that they do not)."""

from __future__ import annotations

import importlib
import io
import re
from dataclasses import dataclass
from typing import Any

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

import main
from shared.web.router import Body, Route

PARAM = re.compile(r"\(\?P<(\w+)>(?:\[\^/\]\+|\.\+)\)")


@dataclass(frozen=True)
class Served:
    function: str
    method: str
    template: str  # "/certify/{kind}/{entity_id}"
    route: Route

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.template

    def url(self, **values: str) -> str:
        """The template with its parameters filled in (``kind`` skills, ids random, unless
        given)."""
        defaults = {
            "kind": "skills",
            "entity_id": "0b5e9a3c-6f1d-4c2a-9e8b-3d7f1a2c4e6b",
            "run_id": "0b5e9a3c-6f1d-4c2a-9e8b-3d7f1a2c4e6b",
            "version": "1",
            "index": "0",
            "tenant": "t-0",
            "tile": "tile/0/000.p/1",
        }
        return re.sub(r"\{(\w+)\}", lambda m: {**defaults, **values}[m.group(1)], self.template)


def served() -> list[Served]:
    out = []
    for function in main.FUNCTIONS:
        router = importlib.import_module(f"functions.{function}").router
        for route in router.routes:
            path = PARAM.sub(r"{\1}", route.pattern.pattern[1:-1])
            out.append(Served(function, route.method, f"/{function}{path}", route))
    return out


def body_routes() -> list[Served]:
    """Routes taking a JSON body. The one raw-protocol route (C2SP tlog-witness
    add-checkpoint, ``Body.RAW``) is probed by tests/tlog/test_witness_function.py."""
    return [s for s in served() if s.route.body in (Body.JSON, Body.OPTIONAL_JSON)]


FRAMINGS = ("content-length", "chunked, terminated by the server", "chunked, test client")


def send(
    client: Any, method: str, url: str, data: bytes, framing: str, headers: dict[str, str]
) -> Any:
    """``data`` as the body, framed as ``framing`` names, through werkzeug's test client.

    "chunked, terminated by the server" is what gunicorn and werkzeug's server hand an app
    (the body de-chunked, no Content-Length, ``wsgi.input_terminated``); "chunked, test
    client" is the test client's own (no Content-Length and no termination flag)."""
    if framing == "content-length":
        return client.open(url, method=method, data=data, headers=headers)
    builder = EnvironBuilder(
        url, method=method, headers={**headers, "Transfer-Encoding": "chunked"}
    )
    environ = builder.get_environ()
    builder.close()
    environ.pop("CONTENT_LENGTH", None)  # the test client sets one; no server does for chunked
    environ["wsgi.input"] = io.BytesIO(data)
    if "server" in framing:
        environ["wsgi.input_terminated"] = True
    return client.open(Request(environ))
