"""Every function's routes as OpenAPI path items (parameters, bodies, responses, errors)."""

from __future__ import annotations

from typing import Any

from shared import lifecycle
from shared.auditing import MAX_RUNS_PAGE, RUNS_PAGE
from shared.certification import MAX_BATCH
from shared.entities import DEFAULT_PAGE, MAX_CATEGORY, MAX_PAGE
from shared.entities import MAX_BATCH as MAX_CREATE_BATCH
from shared.kinds import KINDS, MAX_NAME, MAX_TAG
from shared.openapi.schemas import (
    AUTH,
    BODY,
    HASH_B64,
    JSON,
    PROBLEMS,
    SLUGS,
    STRING,
    UUID,
    array,
    ref,
    schema_name,
)
from shared.query_params import MAX_INTEGER
from shared.reports import FORMATS
from shared.rules.inputs import AMENDMENT_REASON

# ---- parameters and operations -----------------------------------------------------------


def path_param(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    out = {"name": name, "in": "path", "required": True, "schema": schema}
    if description:
        out["description"] = description
    return out


def query_param(
    name: str, schema: dict[str, Any], description: str = "", *, required: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "in": "query", "required": required, "schema": schema}
    if description:
        out["description"] = description
    return out


def if_match(*, required: bool) -> dict[str, Any]:
    return {
        "name": "If-Match",
        "in": "header",
        "required": required,
        "schema": {"type": "string", "examples": ['"v1"']},
        "description": 'the ETag of the version the change is based on, "vN"',
    }


KIND = path_param("kind", {"type": "string", "enum": SLUGS})
ENTITY_ID = path_param("entity_id", UUID)
ETAG = {"required": True, "schema": {"type": "string", "pattern": '^"v[0-9]+"$'}}
RETRY_AFTER = {"Retry-After": {"required": True, "schema": {"type": "string"}}}


def json_body(schema: dict[str, Any], example: Any, *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema, "example": example}}}


EXAMPLE_ID = "0b5e9a3c-6f1d-4c2a-9e8b-3d7f1a2c4e6b"


def ok(
    schema: dict[str, Any] | None,
    description: str = "OK",
    *,
    media: str = JSON,
    headers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {media: {"schema": schema}}
    if headers:
        out["headers"] = headers
    return out


def doc_response(description: str = "The version", **extra_headers: Any) -> dict[str, Any]:
    return ok(ref("Document"), description, headers={"ETag": ETAG, **extra_headers})


def written_response() -> dict[str, Any]:
    return ok(ref("WrittenDocument"), "The new version and its cascade", headers={"ETag": ETAG})


def operation(
    operation_id: str,
    summary: str,
    responses: dict[str, Any],
    *problems: int,
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    public: bool = False,
) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": operation_id, "summary": summary}
    if parameters:
        out["parameters"] = parameters
    if body is not None:
        out["requestBody"] = body
    out["responses"] = {
        **responses,
        **{str(code): {"$ref": f"#/components/responses/{PROBLEMS[code][0]}"} for code in problems},
    }
    if public:
        out["security"] = []
    return out


def common_paths(function: str) -> dict[str, Any]:
    return {
        f"/{function}/openapi.json": {
            "get": operation(
                f"{function}OpenAPI",
                "This OpenAPI document (no authentication)",
                {"200": ok(ref("OpenAPIDocument"))},
                public=True,
            )
        },
        f"/{function}/healthz": {
            "get": operation(
                f"{function}Health",
                "Liveness: the function reaches its database (no authentication); with"
                " details=1 (a token with the auditor or admin role), the deployment's state"
                " for the caller's tenant",
                {"200": ok(ref("Health"))},
                401,
                403,
                422,
                503,
                parameters=[
                    query_param(
                        "details",
                        {"type": "string", "enum": ["0", "1"]},
                        "1: database round trip, migration revision, active key, latest"
                        " checkpoint and audit (needs the auditor or admin role)",
                    )
                ],
                public=True,
            )
        },
    }


def _registry() -> dict[str, Any]:
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


def _log() -> dict[str, Any]:
    size = {"type": "integer", "minimum": 1, "maximum": MAX_INTEGER}
    brief = {"Cache-Control": {"schema": STRING}}
    note = ok(STRING, "A C2SP signed checkpoint note", media="text/plain", headers=brief)
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


def _certify() -> dict[str, Any]:
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


def _audit() -> dict[str, Any]:
    return {
        "/audit/runs": {
            "post": operation(
                "startAudit",
                "Run an audit now (or return the one already running)",
                {
                    "200": ok(ref("AuditRun"), "An audit was already running"),
                    "201": ok(
                        ref("AuditRun"),
                        "Completed",
                        headers={"Location": {"required": True, "schema": STRING}},
                    ),
                },
                *BODY,
                *AUTH,
                body=json_body(ref("AuditRequest"), {"mode": "incremental"}, required=False),
            ),
            "get": operation(
                "listAudits",
                "Recent audit runs, newest first (findings left out)",
                {"200": ok(ref("AuditRunList"))},
                *AUTH,
                422,
                parameters=[
                    query_param(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_RUNS_PAGE},
                        f"default {RUNS_PAGE}",
                    )
                ],
            ),
        },
        "/audit/runs/{run_id}": {
            "get": operation(
                "getAudit",
                "One audit run with its findings",
                {"200": ok(ref("AuditRun"))},
                *AUTH,
                404,
                parameters=[path_param("run_id", UUID)],
            )
        },
        "/audit/entities/{kind}/{entity_id}": {
            "parameters": [KIND, ENTITY_ID],
            "get": operation(
                "auditEntity",
                "One entity's tamper report, checked now",
                {"200": ok(ref("EntityAuditReport"))},
                *AUTH,
                404,
            ),
        },
    }


EXPORT_SLOTS = (
    "At most PLANT_EXPORT_CONCURRENCY exports run at once in an instance (2 by default): "
    "another gets 503 with Retry-After before any work is done. An export stops its work "
    "when its client disconnects."
)


def _export() -> dict[str, Any]:
    checkpoint_headers = {
        "X-Checkpoint-Size": {"required": True, "schema": STRING},
        "X-Checkpoint-Root": {"required": True, "schema": STRING},
        "Content-Disposition": {"required": True, "schema": STRING},
    }
    report = {
        "description": "The report",
        "headers": {
            **checkpoint_headers,
            "X-Report-SHA256": {"required": True, "schema": STRING},
            "X-Report-Envelope": {"schema": STRING},
        },
        "content": {
            JSON: {"schema": ref("Report")},
            "text/csv": {"schema": STRING},
            "application/pdf": {
                "schema": {"type": "string", "contentMediaType": "application/pdf"}
            },
        },
    }
    report_op = operation(
        "complianceReport",
        "Compliance report of every current entity",
        {"200": report},
        422,
        *AUTH,
        parameters=[
            query_param("format", {"type": "string", "enum": list(FORMATS)}, "default json"),
            query_param("kind", {"type": "string", "enum": SLUGS}),
            query_param("status", {"type": "string", "enum": list(lifecycle.STATUSES)}),
        ],
    )
    report_op["description"] = (
        "JSON and CSV are generated at any size (spooled, then sent) and come with "
        "X-Report-Envelope: base64 of a detached DSSE envelope over the body's exact bytes, "
        "signed by the report-signing key (`plant verify-report`). A PDF is signed (PAdES) by "
        "the same key; up to PLANT_EXPORT_PDF_MAX_ENTITIES entities (5,000 by default) it "
        "lists every one, above that it is the summary edition (summary, exceptions, "
        "findings), saying so on its cover. X-Report-SHA256 is the SHA-256 of the body. "
        + EXPORT_SLOTS
    )
    bundle_op = operation(
        "evidenceBundle",
        "Offline evidence bundle (seals first), checked by `plant verify`",
        {"200": ok(ref("EvidenceBundle"), "The bundle, streamed", headers=checkpoint_headers)},
        422,
        *AUTH,
        404,
        409,
        parameters=[
            query_param("kind", {"type": "string", "enum": SLUGS}),
            query_param("entity", UUID, "one entity's entries only"),
        ],
    )
    bundle_op["description"] = "Streamed at any size. " + EXPORT_SLOTS
    certificate = {
        "type": "object",
        "required": ["certificate", "certificate_sha256", "vkey", "key_id"],
        "properties": {
            "certificate": {"type": "string", "description": "PEM, self-signed X.509"},
            "certificate_sha256": {"type": "string"},
            "vkey": {"type": "string", "description": "the DSSE envelopes' Ed25519 vkey"},
            "key_id": {"type": "string"},
        },
    }
    certificate_op = operation(
        "reportCertificate",
        "The report-signing certificate and vkey (what validates a report's signature)",
        {"200": ok(certificate)},
        *AUTH,
    )
    return {
        "/export/report": {"get": report_op},
        "/export/report/certificate": {"get": certificate_op},
        "/export/bundle": {"get": bundle_op},
    }


REF_422 = f"#/components/responses/{PROBLEMS[422][0]}"


def path_parameter_problems(paths: dict[str, Any]) -> dict[str, Any]:
    """``paths`` with a 422 on every operation that takes a path parameter other than its kind:
    a value that cannot name anything (an id that is not a UUID) is that, not a 404
    (shared/path_params.py)."""
    for item in paths.values():
        shared = item.get("parameters", [])
        for method, op in item.items():
            if method == "parameters":
                continue
            named = [p["name"] for p in [*shared, *op.get("parameters", [])] if p["in"] == "path"]
            if set(named) - {"kind"}:
                op["responses"].setdefault("422", {"$ref": REF_422})
    return paths


PATHS = {
    "registry": _registry,
    "log": _log,
    "certify": _certify,
    "audit": _audit,
    "export": _export,
}
DESCRIPTIONS = {
    "registry": "Create, amend, read and list skills, job roles, teams, agents and industries.",
    "log": "The tenant's verifiable log: checkpoints, entries, proofs, keys and sealing.",
    "certify": "Certify versions against the rule catalogue; list certificates.",
    "audit": "Run and read audits; one entity's tamper report.",
    "export": "Compliance reports (JSON, CSV, PDF) and offline evidence bundles.",
}
