"""The witness function (C2SP tlog-witness v1.0.0): ``POST /witness/add-checkpoint``.

A separate deployment an independent party runs with its own key and database
(terraform/witness/). Its callers are logs, authenticated by the log signature on the
checkpoint they send (an unknown origin 404, a bad signature 403), not by a bearer token.
"""

from __future__ import annotations

import flask

from shared.tlog import witnessing
from shared.web import health, openapi
from shared.web.router import BASE_HEADERS, Body, Call, Router, json_response

router = Router("witness")


@router.route("GET", "/openapi.json", public=True)
def openapi_document(call: Call) -> flask.Response:
    return json_response(openapi.document("witness"))


@router.route("GET", "/healthz", public=True, query=health.QUERY)
def healthz(call: Call) -> flask.Response:
    witnessing.signer()  # a witness without its key is not healthy (503)
    return json_response(health.healthz(call))


@router.route("POST", "/add-checkpoint", body=Body.RAW, public=True)
def add_checkpoint(call: Call) -> flask.Response:
    answer = witnessing.add_checkpoint(call.body)
    return flask.Response(
        answer.body, status=answer.status, headers=BASE_HEADERS, content_type=answer.content_type
    )
