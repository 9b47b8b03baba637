"""The witness function's OpenAPI document (C2SP tlog-witness v1.0.0)."""

from __future__ import annotations

from functools import cache
from typing import Any

from shared.integrity.witness_protocol import SIZE_CONTENT_TYPE
from shared.web.openapi.builder import build, ok, operation
from shared.web.openapi.schemas import STRING

DESCRIPTION = (
    "A witness (C2SP tlog-witness v1.0.0): cosigns a log's checkpoint once it is proven "
    "consistent with the one it cosigned before."
)
SCHEMAS: dict[str, dict[str, Any]] = {}


def paths() -> dict[str, Any]:
    text = {"text/plain": {"schema": STRING}}
    return {
        "/witness/add-checkpoint": {
            "post": operation(
                "addCheckpoint",
                "old <size> LF, 0..63 base64 consistency-proof lines, an empty line, then the "
                "log-signed checkpoint note (LF only); authenticated by the log's signature",
                {
                    "200": ok(STRING, "cosignature/v1 lines", media="text/plain"),
                    "409": {
                        "description": "old is not the size the witness holds (its size, LF)",
                        "content": {SIZE_CONTENT_TYPE: {"schema": STRING}},
                    },
                },
                400,
                403,
                404,
                413,
                422,
                public=True,
                body={"required": True, "content": text},
            )
        },
    }


@cache
def document() -> dict[str, Any]:
    return build("witness", DESCRIPTION, paths(), SCHEMAS)
