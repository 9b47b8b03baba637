"""The certify function: run the constitutional checklist and issue certificates
(`/certify/...`)."""

from __future__ import annotations

import flask

from shared import certification, health, openapi
from shared.http import Call, Router, json_response

router = Router("certify")


@router.route("GET", "/openapi.json")
def openapi_document(call: Call) -> flask.Response:
    return json_response(openapi.document("certify"))


@router.route("GET", "/healthz")
def healthz(call: Call) -> flask.Response:
    return json_response(health.healthz(call))


@router.route("GET", "/rules")
def rules(call: Call) -> flask.Response:
    call.principal  # noqa: B018  (authenticates)
    return json_response({"rules": certification.catalogue()})


@router.route("POST", "/batch")
def batch(call: Call) -> flask.Response:
    return json_response(certification.certify_batch(call.principal, call.json(), call.request_id))


@router.route("GET", "/<kind>/<entity_id>/certificates")
def certificates(call: Call, kind: str, entity_id: str) -> flask.Response:
    return json_response(certification.certificates(call.principal, kind, entity_id))


@router.route("POST", "/<kind>/<entity_id>")
def certify(call: Call, kind: str, entity_id: str) -> flask.Response:
    body = call.json() if call.request.content_length else None
    result = certification.certify(call.principal, kind, entity_id, body, call.request_id)
    return json_response(result, 201)
