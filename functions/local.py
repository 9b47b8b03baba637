"""Every function on one local server, each under its own prefix (`/registry`, `/log`, ...).

Each function is built exactly as Cloud Functions builds it (functions_framework.create_app on
the root main.py) and mounted at ``/<name>``; served by shared/web/serving.py from ``plant serve``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import functions_framework
from werkzeug.middleware.dispatcher import DispatcherMiddleware

import main
from shared.config import ROOT
from shared.errors import NotFound
from shared.web.router import STARTED, problem_response, unrouted_line


def _not_found(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A path under no function: the project's own not-found problem (and its request line)."""
    environ.setdefault(STARTED, time.perf_counter())
    functions = ", ".join(main.FUNCTIONS)
    response = problem_response(NotFound(f"functions are served under /{{{functions}}}/"))
    unrouted_line(environ).write(response.status_code, response.calculate_content_length() or 0)
    return response(environ, start_response)


def build() -> DispatcherMiddleware:
    source = str(ROOT / "main.py")
    mounts = {
        f"/{name}": functions_framework.create_app(target=name, source=source)
        for name in main.FUNCTIONS
    }
    return DispatcherMiddleware(_not_found, mounts)


app = build()
