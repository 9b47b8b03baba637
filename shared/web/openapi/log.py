"""The log function's OpenAPI document."""

from __future__ import annotations

from functools import cache
from typing import Any

from shared.rules.query_params import MAX_INTEGER
from shared.web.openapi.builder import build, ok, operation, path_param, query_param
from shared.web.openapi.schemas import AUTH, HASH_B64, STRING, ref

DESCRIPTION = "The tenant's verifiable log: checkpoints, entries, proofs, keys and sealing."
SCHEMAS: dict[str, dict[str, Any]] = {}
TILE_PATTERN = r"^tile/(entries|0|[1-9][0-9]?)/(x[0-9]{3}/)*[0-9]{3}(\.p/[1-9][0-9]{0,2})?$"


def paths() -> dict[str, Any]:
    size = {"type": "integer", "minimum": 1, "maximum": MAX_INTEGER}
    brief = {"Cache-Control": {"schema": STRING}}
    note = ok(STRING, "A C2SP signed checkpoint note", media="text/plain", headers=brief)
    tenant = path_param("tenant", STRING, "the log's tenant (the token's own)")
    return {
        "/log/checkpoint": {
            "get": operation(
                "latestCheckpoint",
                "The latest signed checkpoint",
                {
                    "200": ok(
                        STRING,
                        "A C2SP signed checkpoint note",
                        media="text/plain",
                        headers={**brief, "X-Tree-Size": {"required": True, "schema": STRING}},
                    )
                },
                *AUTH,
                404,
            )
        },
        "/log/checkpoints": {
            "get": operation(
                "checkpointAt",
                "The checkpoint of a given tree size",
                {"200": note},
                422,
                *AUTH,
                404,
                parameters=[query_param("size", size, required=True)],
            )
        },
        "/log/entries/{index}": {
            "get": operation(
                "getEntry",
                "One log entry: its stored bytes and hashes",
                {"200": ok(ref("LogEntry"))},
                *AUTH,
                404,
                parameters=[path_param("index", {"type": "integer", "minimum": 0})],
            )
        },
        "/log/proofs/inclusion": {
            "get": operation(
                "inclusionProof",
                "Inclusion proof of one entry (by index or leaf_hash, exactly one)",
                {"200": ok(ref("InclusionProof"))},
                422,
                *AUTH,
                404,
                parameters=[
                    query_param("index", {"type": "integer", "minimum": 0, "maximum": MAX_INTEGER}),
                    query_param("leaf_hash", HASH_B64),
                    query_param("size", size, "default: the latest checkpoint's size"),
                ],
            )
        },
        "/log/proofs/consistency": {
            "get": operation(
                "consistencyProof",
                "Consistency proof between two checkpointed tree sizes",
                {"200": ok(ref("ConsistencyProof"))},
                422,
                *AUTH,
                parameters=[
                    query_param("old", size, required=True),
                    query_param("new", size, required=True),
                ],
            )
        },
        "/log/keys": {
            "get": operation(
                "publicKeys",
                "The checkpoint and certificate verification keys",
                {"200": ok(ref("PublicKeys"), headers=brief)},
                *AUTH,
            )
        },
        "/log/tiles/{tenant}/checkpoint": {
            "get": operation(
                "tilesCheckpoint",
                "C2SP tlog-tiles: the latest checkpoint with its witnesses' cosignatures "
                "(never cached); the token's tenant must be {tenant}",
                {"200": ok(STRING, "A C2SP signed checkpoint note", media="text/plain")},
                *AUTH,
                404,
                parameters=[tenant],
            )
        },
        "/log/tiles/{tenant}/{tile}": {
            "get": operation(
                "tile",
                "C2SP tlog-tiles: tile/<L>/<N>[.p/<W>] (32-byte hashes) or "
                "tile/entries/<N>[.p/<W>] (uint16 big-endian length || entry); full tiles are "
                "immutable (public, max-age one year), partial ones briefly cached",
                {
                    "200": ok(
                        {"type": "string", "format": "binary"},
                        "The tile's bytes",
                        media="application/octet-stream",
                        headers=brief,
                    )
                },
                *AUTH,
                404,
                parameters=[
                    tenant,
                    path_param(
                        "tile",
                        {"type": "string", "pattern": TILE_PATTERN},
                        "tile/<L>/<N> or tile/entries/<N>, N in x-prefixed three-digit groups, "
                        "slashes included",
                    ),
                ],
            )
        },
        "/log/seal": {
            "post": operation(
                "seal",
                "Sign a checkpoint of the log as it is now, and anchor it",
                {
                    "200": ok(ref("Seal"), "Nothing new: the latest checkpoint"),
                    "201": ok(ref("Seal"), "A new checkpoint"),
                },
                *AUTH,
                409,
            )
        },
    }


@cache
def document() -> dict[str, Any]:
    return build("log", DESCRIPTION, paths(), SCHEMAS)
