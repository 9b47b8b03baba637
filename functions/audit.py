"""The audit function: run and read audits, and one entity's tamper report (`/audit/...`).
Cloud Scheduler calls `POST /audit/runs` with an OIDC token."""

from __future__ import annotations

import flask

from shared import audit
from shared.web import health, openapi
from shared.web.router import Body, Call, Router, json_response

router = Router("audit")


@router.route("GET", "/openapi.json", public=True)
def openapi_document(call: Call) -> flask.Response:
    return json_response(openapi.document("audit"))


@router.route("GET", "/healthz", public=True, query=health.QUERY)
def healthz(call: Call) -> flask.Response:
    return json_response(health.healthz(call))


@router.route("POST", "/runs", body=Body.OPTIONAL_JSON, roles=("auditor",))
def start_run(call: Call) -> flask.Response:
    run, started = audit.run(call.principal, call.body)
    return json_response(run, 201 if started else 200, {"Location": f"/audit/runs/{run['id']}"})


@router.route("GET", "/runs", query=("limit",))
def list_runs(call: Call) -> flask.Response:
    return json_response(audit.list_runs(call.principal, call.query))


@router.route("GET", "/runs/<run_id>")
def get_run(call: Call, run_id: str) -> flask.Response:
    return json_response(audit.get_run(call.principal, run_id))


@router.route("GET", "/entities/<kind>/<entity_id>")
def entity_report(call: Call, kind: str, entity_id: str) -> flask.Response:
    return json_response(audit.entity_report(call.principal, kind, entity_id))
