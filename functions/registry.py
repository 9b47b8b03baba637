"""The registry function: create, amend, read and list skills, job roles, teams, agents and
industries (`/registry/...`)."""

from __future__ import annotations

import flask

from shared import tlog
from shared.registry import batches, current, membership, reads, versions, writes
from shared.web import health, openapi
from shared.web.router import Body, Call, Router, json_response

router = Router("registry")
WRITE = ("author",)


def _document(doc: versions.Document, status: int = 200, **headers: str) -> flask.Response:
    return json_response(doc.body, status, {"ETag": f'"v{doc.version}"', **headers})


def _served(
    call: Call, doc: versions.Document, status: int = 200, **headers: str
) -> flask.Response:
    """A new version as a read would serve it (a team's with its agents)."""
    membership.served(call.principal.tenant, doc.body)
    return _document(doc, status, **headers)


def _written(call: Call, doc: versions.Document) -> flask.Response:
    """A new version as served, with ``cascade``: every entity the write moved out of
    certified."""
    membership.served(call.principal.tenant, doc.body)
    return json_response(
        {**doc.body, "cascade": list(doc.cascade)}, 200, {"ETag": f'"v{doc.version}"'}
    )


@router.route("GET", "/openapi.json", public=True)
def openapi_document(call: Call) -> flask.Response:
    return json_response(openapi.document("registry"))


@router.route("GET", "/healthz", public=True, query=health.QUERY)
def healthz(call: Call) -> flask.Response:
    return json_response(health.healthz(call))


@router.route("POST", "/agents/<entity_id>/team", body=Body.JSON, roles=WRITE)
def assign_team(call: Call, entity_id: str) -> flask.Response:
    doc = writes.assign_team(
        call.principal, entity_id, call.body, call.headers.get("If-Match"), call.request_id
    )
    return _written(call, doc)


@router.route("POST", "/<kind>/<entity_id>/status", body=Body.JSON, roles=WRITE)
def change_status(call: Call, kind: str, entity_id: str) -> flask.Response:
    doc = writes.change_status(
        call.principal, kind, entity_id, call.body, call.headers.get("If-Match"), call.request_id
    )
    return _written(call, doc)


@router.route("GET", "/<kind>/<entity_id>/proof/current")
def current_proof(call: Call, kind: str, entity_id: str) -> flask.Response:
    return json_response(current.current_proof(call.principal, kind, entity_id))


@router.route("GET", "/<kind>/<entity_id>/versions/<version>/proof")
def version_proof(call: Call, kind: str, entity_id: str, version: str) -> flask.Response:
    doc = reads.get_version(call.principal, kind, entity_id, version)
    return json_response(tlog.version_proof(call.principal, doc.body["audit_trail"]["log_index"]))


@router.route("GET", "/<kind>/<entity_id>/versions/<version>")
def get_version(call: Call, kind: str, entity_id: str, version: str) -> flask.Response:
    return _document(reads.get_version(call.principal, kind, entity_id, version))


@router.route("GET", "/<kind>/<entity_id>/versions")
def list_versions(call: Call, kind: str, entity_id: str) -> flask.Response:
    return json_response(reads.list_versions(call.principal, kind, entity_id))


@router.route("GET", "/<kind>/<entity_id>")
def get_entity(call: Call, kind: str, entity_id: str) -> flask.Response:
    return _document(reads.get(call.principal, kind, entity_id))


@router.route("PATCH", "/<kind>/<entity_id>", body=Body.JSON, roles=WRITE)
def amend(call: Call, kind: str, entity_id: str) -> flask.Response:
    doc = writes.amend(
        call.principal, kind, entity_id, call.body, call.headers.get("If-Match"), call.request_id
    )
    return _written(call, doc)


@router.route("GET", "/<kind>", query=reads.LIST_QUERY)
def list_entities(call: Call, kind: str) -> flask.Response:
    return json_response(reads.list_entities(call.principal, kind, call.query))


@router.route("POST", "/<kind>/batch", body=Body.JSON, roles=WRITE, admit=batches.batch_admitted)
def create_batch(call: Call, kind: str) -> flask.Response:
    items = batches.batch_items(call.body)
    made = batches.create_batch(call.principal, kind, items, call.request_id)
    return json_response({"items": made}, 201)


@router.route("POST", "/<kind>", body=Body.JSON, roles=WRITE)
def create(call: Call, kind: str) -> flask.Response:
    doc = writes.create(call.principal, kind, call.body, call.request_id)
    location = f"/registry/{kind}/{doc.body['identity']['id']}"
    return _served(call, doc, 201, Location=location)
