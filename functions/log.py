"""The log function: checkpoints, entries, inclusion and consistency proofs, public keys and
sealing (`/log/...`)."""

from __future__ import annotations

import flask

from shared import tlog
from shared.integrity import digests
from shared.security.principal import READ_ROLES
from shared.web import health, openapi
from shared.web.router import (
    Call,
    Router,
    bytes_response,
    json_response,
    private_cache,
    text_response,
)

router = Router("log")

# Checkpoints and keys change rarely: the caller may keep them briefly (its own cache only: a
# checkpoint is one tenant's, and every answer here needs a token).
BRIEF_CACHE = private_cache(10)
# A full tile's bytes never change (C2SP tlog-tiles): any cache may keep it for a year. A
# partial tile is replaced by a wider one as the log grows, and the checkpoint is never cached.
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}


@router.route("GET", "/openapi.json", public=True)
def openapi_document(call: Call) -> flask.Response:
    return json_response(openapi.document("log"))


@router.route("GET", "/healthz", public=True, query=health.QUERY)
def healthz(call: Call) -> flask.Response:
    return json_response(health.healthz(call))


@router.route("GET", "/checkpoint")
def checkpoint(call: Call) -> flask.Response:
    last = tlog.latest_checkpoint(call.principal)
    return text_response(last.note, headers={**BRIEF_CACHE, "X-Tree-Size": str(last.size)})


@router.route("GET", "/checkpoints", query=("size",))
def checkpoint_at(call: Call) -> flask.Response:
    found = tlog.checkpoint_at(call.principal, call.query)
    return text_response(found.note, headers=BRIEF_CACHE)


@router.route("GET", "/entries/<index>")
def entry(call: Call, index: str) -> flask.Response:
    return json_response(tlog.entry(call.principal, index))


@router.route("GET", "/proofs/inclusion", query=("index", "leaf_hash", "size"))
def inclusion(call: Call) -> flask.Response:
    return json_response(tlog.inclusion(call.principal, call.query))


@router.route("GET", "/proofs/consistency", query=("old", "new"))
def consistency(call: Call) -> flask.Response:
    return json_response(tlog.consistency(call.principal, call.query))


@router.route("GET", "/keys")
def public_keys(call: Call) -> flask.Response:
    call.principal.require(*READ_ROLES)
    return json_response(tlog.public_keys(), headers=BRIEF_CACHE)


@router.route("POST", "/seal", roles=("auditor",))
def seal(call: Call) -> flask.Response:
    sealed = tlog.seal(call.principal.tenant)
    return json_response(
        {
            "tree_size": sealed.checkpoint.size,
            "root_hash": digests.b64(sealed.checkpoint.root),
            "created": sealed.created,
            "checkpoint": sealed.checkpoint.note,
        },
        201 if sealed.created else 200,
    )


@router.route("GET", "/tiles/<tenant>/checkpoint")
def tiles_checkpoint(call: Call, tenant: str) -> flask.Response:
    last = tlog.tile_checkpoint(call.principal, tenant)
    return text_response(last.note, headers={"X-Tree-Size": str(last.size)})


@router.route("GET", "/tiles/<tenant>/<path:tile>")
def tiles_tile(call: Call, tenant: str, tile: str) -> flask.Response:
    found = tlog.tile(call.principal, tenant, tile)
    return bytes_response(found.data, headers=IMMUTABLE if found.full else BRIEF_CACHE)
