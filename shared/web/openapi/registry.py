"""The registry function's OpenAPI document."""

from __future__ import annotations

from functools import cache
from typing import Any

from shared.registry.batches import MAX_BATCH as MAX_CREATE_BATCH
from shared.registry.reads import DEFAULT_PAGE, MAX_CATEGORY, MAX_PAGE
from shared.rules import lifecycle
from shared.rules.inputs import AMENDMENT_REASON
from shared.rules.kinds import KINDS, MAX_NAME, MAX_TAG
from shared.web.openapi.builder import (
    ENTITY_ID,
    EXAMPLE_ID,
    KIND,
    build,
    doc_response,
    if_match,
    json_body,
    ok,
    operation,
    path_param,
    query_param,
    written_response,
)
from shared.web.openapi.schemas import AUTH, BODY, STRING, array, ref, schema_name

DESCRIPTION = "Create, amend, read and list skills, job roles, teams, agents and industries."
SCHEMAS: dict[str, dict[str, Any]] = {}


def paths() -> dict[str, Any]:
    create_body = {"anyOf": [ref(f"{schema_name(k)}Create") for k in KINDS.values()]}
    amend_body = {"anyOf": [ref(f"{schema_name(k)}Amendment") for k in KINDS.values()]}
    kinds = ", ".join(f"`{slug}`: {schema_name(k)}Create" for slug, k in KINDS.items())
    version = path_param("version", {"type": "integer", "minimum": 1})
    return {
        "/registry/{kind}": {
            "parameters": [KIND],
            "post": operation(
                "createEntity",
                "Create an entity (version 1, status draft)",
                {"201": doc_response("Created", Location={"required": True, "schema": STRING})},
                *BODY,
                *AUTH,
                404,
                409,
                body={
                    **json_body(
                        create_body,
                        {"name": "Python", "description": "Writes Python", "category": "technical"},
                    ),
                    "description": f"the kind's fields ({kinds})",
                },
            ),
            "get": operation(
                "listEntities",
                "List current versions, oldest first",
                {"200": ok(ref("EntityPage"))},
                *AUTH,
                404,
                422,
                parameters=[
                    query_param("status", {"type": "string", "enum": list(lifecycle.STATUSES)}),
                    query_param("category", {"type": "string", "maxLength": MAX_CATEGORY}),
                    query_param(
                        "q",
                        {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
                        "names that start with q, both folded (NFKC, then lower case)",
                    ),
                    query_param(
                        "tag",
                        {"type": "string", "minLength": 1, "maxLength": MAX_TAG},
                        "entities whose current version has exactly this tag",
                    ),
                    query_param(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                        f"default {DEFAULT_PAGE}",
                    ),
                    query_param("cursor", STRING, "next_cursor of the previous page"),
                ],
            ),
        },
        "/registry/{kind}/batch": {
            "parameters": [KIND],
            "post": operation(
                "createEntities",
                "Create many entities of one kind at once: all or nothing",
                {"201": ok(ref("BatchCreated"))},
                *BODY,
                *AUTH,
                404,
                409,
                body={
                    **json_body(
                        {
                            "type": "object",
                            "properties": {
                                "items": array(create_body, minItems=1, maxItems=MAX_CREATE_BATCH)
                            },
                            "required": ["items"],
                            "additionalProperties": False,
                        },
                        {
                            "items": [
                                {"name": "Go", "description": "Writes Go", "category": "technical"}
                            ]
                        },
                    ),
                    "description": "violations name items[i].field; the body is at most 1 MiB",
                },
            ),
        },
        "/registry/{kind}/{entity_id}": {
            "parameters": [KIND, ENTITY_ID],
            "get": operation(
                "getEntity",
                "The current version",
                {"200": doc_response("The current version")},
                *AUTH,
                404,
                409,
            ),
            "patch": {
                **operation(
                    "amendEntity",
                    "Append a new version with some fields changed",
                    {"200": written_response()},
                    *BODY,
                    *AUTH,
                    404,
                    409,
                    412,
                    428,
                    parameters=[if_match(required=True)],
                    body=json_body(
                        amend_body,
                        {"description": "Writes typed Python", AMENDMENT_REASON: "clearer"},
                    ),
                ),
                "description": "An amendment that changes no field (an amendment_reason alone, "
                "or every field as it is) is refused: 422, rule INPUT-06, and no version is "
                "written.",
            },
        },
        "/registry/{kind}/{entity_id}/status": {
            "parameters": [KIND, ENTITY_ID],
            "post": operation(
                "changeStatus",
                "Move the entity along its lifecycle",
                {"200": written_response()},
                *BODY,
                *AUTH,
                404,
                409,
                412,
                parameters=[if_match(required=False)],
                body=json_body(
                    ref("StatusChange"),
                    {"status": "pending_certification", "reason": "ready for review"},
                ),
            ),
        },
        "/registry/{kind}/{entity_id}/versions": {
            "parameters": [KIND, ENTITY_ID],
            "get": operation(
                "listVersions",
                "Every version, with digests and log indices",
                {"200": ok(ref("VersionList"))},
                *AUTH,
                404,
            ),
        },
        "/registry/{kind}/{entity_id}/versions/{version}": {
            "parameters": [KIND, ENTITY_ID, version],
            "get": operation("getVersion", "One version", {"200": doc_response()}, *AUTH, 404),
        },
        "/registry/{kind}/{entity_id}/versions/{version}/proof": {
            "parameters": [KIND, ENTITY_ID, version],
            "get": operation(
                "getVersionProof",
                "Inclusion proof of a version against the latest checkpoint",
                {"200": ok(ref("VersionProof"))},
                *AUTH,
                404,
            ),
        },
        "/registry/{kind}/{entity_id}/proof/current": {
            "parameters": [KIND, ENTITY_ID],
            "get": operation(
                "getCurrentProof",
                "Proof of the current version against the latest checkpoint's map commit; "
                "an id never registered gets 200 with a proof of absence (head null)",
                {"200": ok(ref("CurrentProof"))},
                *AUTH,
                404,
                409,
            ),
        },
        "/registry/agents/{entity_id}/team": {
            "parameters": [ENTITY_ID],
            "post": operation(
                "assignTeam",
                "Put an agent in a team, or take it out (a new agent version)",
                {"200": written_response()},
                *BODY,
                *AUTH,
                404,
                409,
                412,
                428,
                parameters=[if_match(required=False)],
                body=json_body(ref("TeamAssignment"), {"team_id": EXAMPLE_ID}),
            ),
        },
    }


@cache
def document() -> dict[str, Any]:
    return build("registry", DESCRIPTION, paths(), SCHEMAS)
