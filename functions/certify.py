"""The certify function: run the constitutional checklist and issue certificates
(`/certify/...`)."""

from __future__ import annotations

import flask

from shared.registry import certification
from shared.web import health, openapi
from shared.web.router import Body, Call, Router, json_response

router = Router("certify")


@router.route("GET", "/openapi.json", public=True)
def openapi_document(call: Call) -> flask.Response:
    return json_response(openapi.document("certify"))


@router.route("GET", "/healthz", public=True, query=health.QUERY)
def healthz(call: Call) -> flask.Response:
    return json_response(health.healthz(call))


@router.route("GET", "/rules")
def rules(call: Call) -> flask.Response:
    return json_response({"rules": certification.catalogue()})


@router.route("POST", "/batch", body=Body.JSON, roles=("certifier",))
def batch(call: Call) -> flask.Response:
    return json_response(certification.certify_batch(call.principal, call.body, call.request_id))


@router.route("GET", "/<kind>/<entity_id>/certificates")
def certificates(call: Call, kind: str, entity_id: str) -> flask.Response:
    return json_response(certification.certificates(call.principal, kind, entity_id))


@router.route("POST", "/<kind>/<entity_id>", body=Body.OPTIONAL_JSON, roles=("certifier",))
def certify(call: Call, kind: str, entity_id: str) -> flask.Response:
    result = certification.certify(call.principal, kind, entity_id, call.body, call.request_id)
    return json_response(result, 201)
