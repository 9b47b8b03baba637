"""Cloud Functions source root: one entry point per function.

Cloud Functions loads this file as module ``main`` and calls the entry point named by
``--entry-point``; each delegates to its module in ``functions/``.
"""

from __future__ import annotations

import flask
import functions_framework

from functions import audit as _audit
from functions import certify as _certify
from functions import export as _export
from functions import log as _log
from functions import registry as _registry

FUNCTIONS = ("registry", "log", "certify", "audit", "export")


@functions_framework.http
def registry(request: flask.Request) -> flask.Response:
    return _registry.router.handle(request)


@functions_framework.http
def log(request: flask.Request) -> flask.Response:
    return _log.router.handle(request)


@functions_framework.http
def certify(request: flask.Request) -> flask.Response:
    return _certify.router.handle(request)


@functions_framework.http
def audit(request: flask.Request) -> flask.Response:
    return _audit.router.handle(request)


@functions_framework.http
def export(request: flask.Request) -> flask.Response:
    return _export.router.handle(request)
