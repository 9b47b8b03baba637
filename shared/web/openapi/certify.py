"""The certify function's OpenAPI document."""

from __future__ import annotations

from functools import cache
from typing import Any

from shared.registry.certification import MAX_BATCH
from shared.web.openapi.builder import ENTITY_ID, EXAMPLE_ID, KIND, build, json_body, ok, operation
from shared.web.openapi.schemas import AUTH, BODY, INTEGER, SLUGS, UUID, array, obj, ref

DESCRIPTION = "Certify versions against the rule catalogue; list certificates."

CERTIFY_REQUEST = obj(
    {"version": {"type": "integer", "minimum": 1, "description": "the version expected current"}},
    additionalProperties=False,
)
CERTIFY_BATCH = obj(
    {
        "items": array(
            obj(
                {"kind": {"type": "string", "enum": SLUGS}, "id": UUID, "version": INTEGER},
                ["kind", "id"],
            ),
            minItems=1,
            maxItems=MAX_BATCH,
        )
    },
    ["items"],
    additionalProperties=False,
)
SCHEMAS = {"CertifyRequest": CERTIFY_REQUEST, "CertifyBatch": CERTIFY_BATCH}


def paths() -> dict[str, Any]:
    return {
        "/certify/rules": {
            "get": operation(
                "ruleCatalogue",
                "The rule catalogue",
                {"200": ok(ref("RuleCatalogue"))},
                401,
                503,
            )
        },
        "/certify/batch": {
            "post": {
                **operation(
                    "certifyBatch",
                    f"Certify up to {MAX_BATCH} entities, each on its own",
                    {"200": ok(ref("BatchResult"), "Every item's result, in order")},
                    *BODY,
                    *AUTH,
                    409,
                    body=json_body(
                        ref("CertifyBatch"), {"items": [{"kind": "skills", "id": EXAMPLE_ID}]}
                    ),
                ),
                "description": "Not all or nothing: each item is certified in its own "
                "transaction, in order, and committed or refused by itself. Its result says "
                "which: 201 with the certificate's log index and digest, or its problem and "
                "status (403, 404, 409, 422, or 500 for a server error in that item alone, "
                "nothing of it committed). Once an item is committed the answer is 200 with "
                "every item's result, never a 500.",
            }
        },
        "/certify/{kind}/{entity_id}/certificates": {
            "parameters": [KIND, ENTITY_ID],
            "get": operation(
                "listCertificates",
                "Every certificate issued for the entity",
                {"200": ok(ref("CertificateList"))},
                *AUTH,
                404,
            ),
        },
        "/certify/{kind}/{entity_id}": {
            "parameters": [KIND, ENTITY_ID],
            "post": {
                **operation(
                    "certify",
                    "Run the checklist on the current version and issue a certificate",
                    {"201": ok(ref("Certification"), "Certified")},
                    *BODY,
                    *AUTH,
                    404,
                    409,
                    412,
                    body=json_body(ref("CertifyRequest"), {"version": 1}, required=False),
                ),
                "description": "A `version` the entity does not have is 404 (no such "
                "version); an earlier one than the current is 409 (stale), with "
                "current_version.",
            },
        },
    }


@cache
def document() -> dict[str, Any]:
    return build("certify", DESCRIPTION, paths(), SCHEMAS)
