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
from shared.http import install_error_pages

FUNCTIONS = ("registry", "log", "certify", "audit", "export")

# functions_framework runs this file inside the app it serves it from: make that app's own
# errors (e.g. a path its URL map cannot match) problem+json too.
if flask.has_app_context():
    install_error_pages(flask.current_app)


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
