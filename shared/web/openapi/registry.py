"""The registry function's OpenAPI document."""

from __future__ import annotations

from functools import cache
from typing import Any

from shared.registry.batches import MAX_BATCH as MAX_CREATE_BATCH
from shared.registry.embeddings import SIMILAR_THRESHOLD
from shared.registry.reads import DEFAULT_PAGE, MAX_CATEGORY, MAX_PAGE
from shared.registry.similar import DEFAULT_SIMILAR, MAX_QUERY_TEXT, MAX_SIMILAR
from shared.rules import lifecycle
from shared.rules.inputs import AMENDMENT_REASON
from shared.rules.kinds import KINDS, MAX_NAME, MAX_TAG
from shared.web.openapi.builder import (
    ENTITY_ID,
    ETAG,
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
from shared.web.openapi.schemas import AUTH, BODY, STRING, array, obj, ref, schema_name

DESCRIPTION = "Create, amend, read and list skills, job roles, teams, agents and industries."
_SIMILAR_ITEM = obj(
    {
        "similarity": {"type": "number", "minimum": -1, "maximum": 1, "description": "cosine"},
        "skill": ref("Document"),
    },
    ["similarity", "skill"],
)
SCHEMAS: dict[str, dict[str, Any]] = {
    "SimilarPage": obj(
        {
            "items": array(_SIMILAR_ITEM),
            "model_id": {**STRING, "description": "the embedding model: name and file SHA-256"},
            "threshold": {"type": "number", "description": "the near-duplicate threshold"},
        },
        ["items", "model_id", "threshold"],
        description="live skills ranked by cosine similarity, best first (one page)",
    ),
    "CreatedWithSimilar": {
        "allOf": [
            ref("CreatedDocument"),
            obj(
                {"similar": array(_SIMILAR_ITEM)},
                description="with check_similar or refuse_similar: the live skills at or "
                f"above cosine {SIMILAR_THRESHOLD}, best first",
            ),
        ]
    },
    "EmbeddingsRefreshed": obj(
        {
            "embedded": {"type": "integer", "minimum": 0},
            "remaining": {"type": "boolean", "description": "stale skills left for the next run"},
            "model_id": STRING,
        },
        ["embedded", "remaining", "model_id"],
    ),
}
_LIMIT = query_param(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": MAX_SIMILAR},
    f"default {DEFAULT_SIMILAR}",
)
_FILTERS = [
    query_param("status", {"type": "string", "enum": list(lifecycle.STATUSES)}),
    query_param("category", {"type": "string", "maxLength": MAX_CATEGORY}),
]
_FLAG = {"type": "string", "enum": ["true", "false"]}


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
                {
                    "201": {
                        **ok(
                            ref("CreatedDocument"),
                            "Created, with its signed receipt",
                            headers={
                                "ETag": ETAG,
                                "Location": {"required": True, "schema": STRING},
                            },
                        ),
                        "content": {
                            "application/json": {
                                "schema": {
                                    "anyOf": [ref("CreatedDocument"), ref("CreatedWithSimilar")]
                                }
                            }
                        },
                    }
                },
                *BODY,
                *AUTH,
                404,
                409,
                501,
                parameters=[
                    query_param(
                        "check_similar",
                        _FLAG,
                        "skills only: also answer the live skills at or above cosine "
                        f"{SIMILAR_THRESHOLD} (similar); a warning, not a uniqueness guarantee",
                    ),
                    query_param(
                        "refuse_similar",
                        _FLAG,
                        "skills only: 409 naming them (similar) instead, writing nothing",
                    ),
                ],
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
                {"200": ok({"anyOf": [ref("EntityPage"), ref("SimilarPage")]})},
                *AUTH,
                404,
                422,
                501,
                parameters=[
                    *_FILTERS,
                    query_param(
                        "similar_to",
                        {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_TEXT},
                        "skills only: rank live skills by meaning (a SimilarPage, limit at most "
                        f"{MAX_SIMILAR}); combines with status and category, not q, tag or cursor",
                    ),
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
        "/registry/{kind}/{entity_id}/similar": {
            "parameters": [KIND, ENTITY_ID],
            "get": operation(
                "similarSkills",
                "Live skills nearest this skill by meaning, itself left out (skills only)",
                {"200": ok(ref("SimilarPage"))},
                *AUTH,
                404,
                409,
                422,
                501,
                parameters=[*_FILTERS, _LIMIT],
            ),
        },
        "/registry/skills/embeddings/refresh": {
            "post": operation(
                "refreshEmbeddings",
                "Embed every live skill whose vector is missing or stale (Cloud Scheduler; "
                "auditor or admin)",
                {"200": ok(ref("EmbeddingsRefreshed"))},
                *AUTH,
                501,
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
