"""Every function on one local server, each under its own prefix (`/registry`, `/log`, ...).

Each function is built exactly as Cloud Functions builds it (functions_framework.create_app on
the root main.py) and mounted at ``/<name>``; served by gunicorn from ``plant serve``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import functions_framework
from werkzeug.middleware.dispatcher import DispatcherMiddleware

import main
from shared.config import ROOT


def _not_found(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = json.dumps(
        {
            "type": "about:blank",
            "title": "Not found",
            "status": 404,
            "detail": f"functions are served under /{{{', '.join(main.FUNCTIONS)}}}/",
        }
    ).encode()
    start_response(
        "404 Not Found",
        [("Content-Type", "application/problem+json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def build() -> DispatcherMiddleware:
    source = str(ROOT / "main.py")
    mounts = {
        f"/{name}": functions_framework.create_app(target=name, source=source)
        for name in main.FUNCTIONS
    }
    return DispatcherMiddleware(_not_found, mounts)


app = build()
