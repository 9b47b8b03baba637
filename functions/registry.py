"""The registry function: create, amend, read and list skills, job roles, teams, agents and
industries (`/registry/...`)."""

from __future__ import annotations

from collections.abc import Mapping

import flask

from shared import tlog
from shared.registry import (
    batches,
    current,
    membership,
    reads,
    similar,
    skill_refresh,
    versions,
    writes,
)
from shared.web import health, openapi
from shared.web.router import Body, Call, Router, json_response

router = Router("registry")
WRITE = ("author",)


def _document(doc: versions.Document, status: int = 200, **headers: str) -> flask.Response:
    """A version as served; a write's with its signed ``receipt``."""
    body = doc.body if doc.receipt is None else {**doc.body, "receipt": doc.receipt}
    return json_response(body, status, {"ETag": f'"v{doc.version}"', **headers})


def _served(
    call: Call,
    doc: versions.Document,
    status: int = 200,
    extra: Mapping[str, object] | None = None,
    **headers: str,
) -> flask.Response:
    """A new version as a read would serve it (a team's with its agents), with its signed
    ``receipt`` and ``extra`` members beside it (a create's ``similar``)."""
    membership.served(call.principal.tenant, doc.body)
    signed = {} if doc.receipt is None else {"receipt": doc.receipt}
    body = {**doc.body, **signed, **(extra or {})}
    return json_response(body, status, {"ETag": f'"v{doc.version}"', **headers})


def _written(call: Call, doc: versions.Document) -> flask.Response:
    """A new version as served, with its ``receipt`` and ``cascade``: every entity the write
    moved out of certified."""
    membership.served(call.principal.tenant, doc.body)
    return json_response(
        {**doc.body, "receipt": doc.receipt, "cascade": list(doc.cascade)},
        200,
        {"ETag": f'"v{doc.version}"'},
    )


@router.route("GET", "/openapi.json", public=True)
def openapi_document(call: Call) -> flask.Response:
    return json_response(openapi.document("registry"))


@router.route("GET", "/healthz", public=True, query=health.QUERY)
def healthz(call: Call) -> flask.Response:
    return json_response(health.healthz(call))


@router.route("POST", "/skills/embeddings/refresh", roles=("auditor",))
def refresh_embeddings(call: Call) -> flask.Response:
    return json_response(skill_refresh.refresh(call.principal.tenant).answer())


@router.route("GET", "/<kind>/<entity_id>/similar", query=similar.SIMILAR_QUERY)
def similar_skills(call: Call, kind: str, entity_id: str) -> flask.Response:
    return json_response(similar.similar_to_skill(call.principal, kind, entity_id, call.query))


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
    if "similar_to" in call.query:
        return json_response(similar.search(call.principal, kind, call.query))
    return json_response(reads.list_entities(call.principal, kind, call.query))


@router.route("POST", "/<kind>/batch", body=Body.JSON, roles=WRITE, admit=batches.batch_admitted)
def create_batch(call: Call, kind: str) -> flask.Response:
    items = batches.batch_items(call.body)
    return json_response(batches.create_batch(call.principal, kind, items, call.request_id), 201)


@router.route("POST", "/<kind>", body=Body.JSON, roles=WRITE, query=similar.CREATE_QUERY)
def create(call: Call, kind: str) -> flask.Response:
    doc, near = similar.create(call.principal, kind, call.body, call.request_id, call.query)
    location = f"/registry/{kind}/{doc.body['identity']['id']}"
    extra = None if near is None else {"similar": near}
    return _served(call, doc, 201, extra, Location=location)
