"""Cloud Functions source root: one entry point per function.

Cloud Functions loads this file as module ``main`` and calls the entry point named by
``--entry-point``; each delegates to its module in ``functions/``.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

import flask
import functions_framework

from shared.web.router import install_error_pages

FUNCTIONS = ("registry", "log", "certify", "audit", "export", "witness")

# functions_framework runs this file inside the app it serves it from: make that app's own
# errors (e.g. a path its URL map cannot match) problem+json too.
if flask.has_app_context():
    install_error_pages(flask.current_app)


@functools.cache
def _function(name: str) -> ModuleType:
    """A function's module, imported on its first request: each deployed function loads
    only its own code (the log function never imports the audit's or the PDF's)."""
    return importlib.import_module(f"functions.{name}")


@functions_framework.http
def registry(request: flask.Request) -> flask.Response:
    return _function("registry").router.handle(request)


@functions_framework.http
def log(request: flask.Request) -> flask.Response:
    return _function("log").router.handle(request)


@functions_framework.http
def certify(request: flask.Request) -> flask.Response:
    return _function("certify").router.handle(request)


@functions_framework.http
def audit(request: flask.Request) -> flask.Response:
    return _function("audit").router.handle(request)


@functions_framework.http
def export(request: flask.Request) -> flask.Response:
    return _function("export").router.handle(request)


@functions_framework.http
def witness(request: flask.Request) -> flask.Response:
    return _function("witness").router.handle(request)
