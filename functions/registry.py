"""The registry function: create, amend, read and list skills, job roles, teams, agents and
industries (`/registry/...`)."""

from __future__ import annotations

import flask

from shared import entities, openapi, tlog
from shared.http import Call, Router, json_response
from shared.storage.engine import database

router = Router("registry")


def _document(doc: entities.Document, status: int = 200, **headers: str) -> flask.Response:
    return json_response(doc.body, status, {"ETag": f'"v{doc.version}"', **headers})


def _written(doc: entities.Document) -> flask.Response:
    """A new version, with ``cascade``: every entity the write moved out of certified."""
    return json_response(
        {**doc.body, "cascade": list(doc.cascade)}, 200, {"ETag": f'"v{doc.version}"'}
    )


@router.route("GET", "/openapi.json")
def openapi_document(call: Call) -> flask.Response:
    return json_response(openapi.document("registry"))


@router.route("GET", "/healthz")
def healthz(call: Call) -> flask.Response:
    database().ping()
    return json_response({"status": "ok"})


@router.route("POST", "/agents/<entity_id>/team")
def assign_team(call: Call, entity_id: str) -> flask.Response:
    doc = entities.assign_team(
        call.principal, entity_id, call.json(), call.headers.get("If-Match"), call.request_id
    )
    return _written(doc)


@router.route("POST", "/<kind>/<entity_id>/status")
def change_status(call: Call, kind: str, entity_id: str) -> flask.Response:
    doc = entities.change_status(
        call.principal, kind, entity_id, call.json(), call.headers.get("If-Match"), call.request_id
    )
    return _written(doc)


@router.route("GET", "/<kind>/<entity_id>/versions/<version>/proof")
def version_proof(call: Call, kind: str, entity_id: str, version: str) -> flask.Response:
    doc = entities.get_version(call.principal, kind, entity_id, version)
    return json_response(tlog.version_proof(call.principal, doc.body["audit_trail"]["log_index"]))


@router.route("GET", "/<kind>/<entity_id>/versions/<version>")
def get_version(call: Call, kind: str, entity_id: str, version: str) -> flask.Response:
    return _document(entities.get_version(call.principal, kind, entity_id, version))


@router.route("GET", "/<kind>/<entity_id>/versions")
def list_versions(call: Call, kind: str, entity_id: str) -> flask.Response:
    return json_response(entities.list_versions(call.principal, kind, entity_id))


@router.route("GET", "/<kind>/<entity_id>")
def get_entity(call: Call, kind: str, entity_id: str) -> flask.Response:
    return _document(entities.get(call.principal, kind, entity_id))


@router.route("PATCH", "/<kind>/<entity_id>")
def amend(call: Call, kind: str, entity_id: str) -> flask.Response:
    doc = entities.amend(
        call.principal, kind, entity_id, call.json(), call.headers.get("If-Match"), call.request_id
    )
    return _written(doc)


@router.route("GET", "/<kind>")
def list_entities(call: Call, kind: str) -> flask.Response:
    return json_response(entities.list_entities(call.principal, kind, call.query))


@router.route("POST", "/<kind>/batch")
def create_batch(call: Call, kind: str) -> flask.Response:
    with entities.batch_admitted(call.principal):  # before the body is read
        items = entities.batch_items(call.json())
        made = entities.create_batch(call.principal, kind, items, call.request_id)
    return json_response({"items": made}, 201)


@router.route("POST", "/<kind>")
def create(call: Call, kind: str) -> flask.Response:
    doc = entities.create(call.principal, kind, call.json(), call.request_id)
    location = f"/registry/{kind}/{doc.body['identity']['id']}"
    return _document(doc, 201, Location=location)
