"""The JSON Schemas of the OpenAPI documents: request bodies built from the kinds' fields and
the input limits (shared/rules/kinds.py, shared/rules/inputs.py), responses as the code builds them,
and the RFC 9457 problem every error is."""

from __future__ import annotations

from typing import Any

from shared.audit.findings import KINDS as FINDING_KINDS
from shared.errors import MAX_LISTED, PROBLEM_BASE
from shared.registry.documents import SECTIONS
from shared.rules import lifecycle
from shared.rules.inputs import AMENDMENT_REASON
from shared.rules.kinds import (
    AUDIT_RUN,
    KINDS,
    MAX_ATTRIBUTES,
    MAX_ATTRIBUTES_BYTES,
    MAX_DEPTH,
    MAX_ID_LIST,
    MAX_REASON,
    MAX_TAG,
    MAX_TAGS,
    Field,
    Kind,
)
from shared.web.bodies import MAX_BODY

JSON = "application/json"
PROBLEM = "application/problem+json"

# ---- schema helpers --------------------------------------------------------------------------


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or JSON null."""
    out = dict(schema)
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    kind = out.get("type")
    if isinstance(kind, str):
        out["type"] = [kind, "null"]
    elif "$ref" in out:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def obj(
    properties: dict[str, Any], required: tuple[str, ...] | list[str] = (), **extra: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = list(required)
    out.update(extra)
    return out


def array(items: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "array", "items": items, **extra}


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
INDEX = {"type": "integer", "minimum": 0}
UUID = {"type": "string", "format": "uuid"}
TIME = {"type": "string", "format": "date-time"}
DIGEST = {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"}
HASH_B64 = {"type": "string", "pattern": "^[A-Za-z0-9+/]{43}=$", "description": "32 bytes, base64"}
B64 = {"type": "string", "contentEncoding": "base64"}
ENTITY_TYPES = [kind.type for kind in KINDS.values()]
# what a log entry may be: a version, a certificate, an audit run's report (its kind
# ``AUDIT_RUN``) or a seal's map commit (kind ``map``; docs/formats.md)
ENTRY_TYPES = ["version", "certificate", "audit", "map_commit"]
ENTRY_KINDS = [*ENTITY_TYPES, AUDIT_RUN, "map"]
CURRENT_PROOF_FIELDS: tuple[str, ...] = (
    "format",
    "tenant",
    "kind",
    "entity_id",
    "checkpoint",
    "map_commit",
)
CURRENT_PROOF_FIELDS += ("map_proof", "head", "version", "certificate")
SLUGS = list(KINDS)

# ---- request bodies, from shared/rules/kinds.py and shared/rules/inputs.py -----------------------


def _text(max_length: int, *, required: bool, description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "maxLength": max_length}
    note = "no NUL characters"
    if required:
        schema["minLength"] = 1
        note = "not blank, " + note
    schema["description"] = f"{description}; {note}" if description else note
    return schema


def field_schema(field: Field) -> dict[str, Any]:
    """The JSON Schema of one client field, with the limits shared/rules/inputs.py checks."""
    refers = f"id of a live {field.references}" if field.references else ""
    schema: dict[str, Any]
    if field.type == "text":
        schema = _text(field.max_length, required=field.required)
    elif field.type == "enum":
        schema = {"type": "string", "enum": list(field.choices)}
    elif field.type == "id":
        schema = {**UUID, "description": refers}
    elif field.type == "ids":
        schema = array(UUID, maxItems=MAX_ID_LIST, uniqueItems=True, description=f"{refers}s")
        if field.required:
            schema["minItems"] = 1
    elif field.type == "tags":
        schema = array(_text(MAX_TAG, required=True), maxItems=MAX_TAGS)
    elif field.type == "attributes":
        schema = {
            "type": "object",
            "maxProperties": MAX_ATTRIBUTES,
            "description": f"any JSON object: at most {MAX_DEPTH} levels deep and "
            f"{MAX_ATTRIBUTES_BYTES} bytes as canonical JSON; no NUL character in any string "
            "or member name",
        }
    else:  # pragma: no cover - kinds.py names every type above
        raise AssertionError(field.type)
    return schema if field.required else nullable(schema)


def schema_name(kind: Kind) -> str:
    return "".join(part.title() for part in kind.type.split("_"))


def _written(kind: Kind) -> list[Field]:
    return [f for f in kind.fields if not f.derived]


def _derived_note(kind: Kind) -> str:
    """What a write body says of the kind's derived fields (refused:
    shared/registry/membership.py)."""
    derived = [f.name for f in kind.fields if f.derived]
    if not derived:
        return ""
    return (
        f"{', '.join(derived)} is served, never written: a body naming it is refused "
        "(422, INPUT-04); a team's agents are the live agents whose team_id names it, "
        "assigned, moved and taken out with POST /registry/agents/{id}/team"
    )


def create_schema(kind: Kind) -> dict[str, Any]:
    written = _written(kind)
    extra = {"description": note} if (note := _derived_note(kind)) else {}
    return obj(
        {f.name: field_schema(f) for f in written},
        [f.name for f in written if f.required],
        additionalProperties=False,
        title=f"New {kind.type}",
        **extra,
    )


def amend_schema(kind: Kind) -> dict[str, Any]:
    """An amendment: any of the kind's fields (merged onto the current version) and a reason."""
    properties = {f.name: field_schema(f) for f in _written(kind)}
    properties[AMENDMENT_REASON] = _text(MAX_REASON, required=True)
    description = "fields left out keep their current value"
    if kind.immutable:
        description += f"; {', '.join(kind.immutable)} cannot change after creation"
    if note := _derived_note(kind):
        description += "; " + note
    return obj(
        properties,
        [AMENDMENT_REASON],
        additionalProperties=False,
        title=f"Amendment of a {kind.type}",
        description=description,
    )


STATUS_CHANGE = obj(
    {
        "status": {
            "type": "string",
            "enum": [s for s in lifecycle.STATUSES if s != "certified"],
            "description": "allowed moves: "
            + "; ".join(
                f"{k} -> {', '.join(sorted(v))}" for k, v in lifecycle.TRANSITIONS.items() if v
            )
            + " ('certified' is reached only through certification)",
        },
        "reason": _text(MAX_REASON, required=True),
    },
    ["status", "reason"],
    additionalProperties=False,
)
TEAM_ASSIGNMENT = obj(
    {
        "team_id": nullable({**UUID, "description": "id of a live team; null takes it out"}),
        AMENDMENT_REASON: nullable(
            _text(MAX_REASON, required=False, description="default 'team assignment'")
        ),
    },
    ["team_id"],
    additionalProperties=False,
)
# ---- responses ---------------------------------------------------------------------------

VIOLATION = obj(
    {"rule": STRING, "field": STRING, "message": STRING, "remediation": STRING},
    ["rule", "field", "message"],
)
PROBLEM_SCHEMA = obj(
    {
        "type": {"type": "string", "format": "uri", "examples": [PROBLEM_BASE + "not-found"]},
        "title": STRING,
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": STRING,
        "violations": array(
            VIOLATION,
            description=f"every rule the request broke (the first {MAX_LISTED})",
            maxItems=MAX_LISTED,
        ),
        "violations_omitted": {
            "type": "integer",
            "minimum": 1,
            "description": f"how many violations past the first {MAX_LISTED} are not listed",
        },
        "errors": array(
            obj({"field": STRING, "message": STRING}, ["field", "message"]),
            description=f"every bad query parameter or value past a limit (the first {MAX_LISTED})",
            maxItems=MAX_LISTED,
        ),
        "errors_omitted": {
            "type": "integer",
            "minimum": 1,
            "description": f"how many errors past the first {MAX_LISTED} are not listed",
        },
        "checks": array(ref("Check"), description="every certification check, passed or not"),
        "allow": array(STRING),
        "limit": INTEGER,
        "current_etag": STRING,
        "current_version": INTEGER,
        "existing_id": UUID,
        "existing_name": STRING,
        "finding": {"type": "string", "enum": list(FINDING_KINDS)},
        "missing": STRING,
        "similar": {"type": "array", "items": {"type": "object"}},
    },
    ["type", "title", "status", "detail"],
    description="RFC 9457 problem details",
)
PROBLEMS: dict[int, tuple[str, str]] = {
    400: ("MalformedRequest", "The body is not JSON, or cannot be read (framing, length)"),
    401: ("Unauthenticated", "No valid bearer token"),
    403: (
        "Forbidden",
        "The caller lacks the role this operation needs, or would certify content they "
        "wrote (L0-06, in violations)",
    ),
    404: ("NotFound", "No such kind, entity, version, entry or run"),
    409: ("Conflict", "The request conflicts with the current state, or the log's integrity"),
    412: ("PreconditionFailed", "If-Match names a stale or malformed version"),
    413: ("PayloadTooLarge", f"The body is over {MAX_BODY} bytes"),
    415: ("UnsupportedMediaType", "The body is not application/json"),
    422: (
        "ValidationFailed",
        "The body breaks input limits or rules (see violations), or a query or path "
        "parameter is invalid (see errors: an id that is not a UUID names id)",
    ),
    428: ("PreconditionRequired", 'If-Match: "vN" is required'),
    501: (
        "NotImplementedHere",
        "The database lacks a PostgreSQL extension this operation needs (named in missing)",
    ),
    503: ("ServiceUnavailable", "The database or a dependency is unavailable; retry later"),
}
AUTH = (401, 403, 503)
BODY = (400, 413, 415, 422)

RULE_RESULT = obj({"rule": STRING, "result": {"type": "string", "enum": ["pass", "fail"]}})
CERTIFICATION_RECORD = obj(
    {
        "certificate_digest": DIGEST,
        "certificate_log_index": INDEX,
        "certified_version": INTEGER,
        "certified_digest": DIGEST,
        "certifier": STRING,
        "certified_at": TIME,
        "key_id": STRING,
    },
    ["certificate_digest", "certificate_log_index", "certified_version", "certifier"],
)


def _section(section: str) -> dict[str, Any]:
    """Metadata or relationships: the union of every kind's fields in that section."""
    properties: dict[str, Any] = {}
    for kind in KINDS.values():
        for field in kind.fields:
            if field.section != section:
                continue
            if field.derived:
                properties[field.name] = array(
                    UUID,
                    description="a team's live agents (neither suspended nor deprecated) whose "
                    "current version names it as team_id, in creation order: filled in when "
                    "served (a read, a list, a write's or certification's response), never "
                    "hashed into the version, whose bytes hold [] (a team version written "
                    "before may hold the list its author sent, which records nothing); the "
                    "list L1-TEAM-01 counts",
                )
            elif field.type in ("ids", "tags"):
                properties[field.name] = array(UUID if field.type == "ids" else STRING)
            elif field.type == "attributes":
                properties[field.name] = {"type": "object"}
            elif field.type == "id":
                properties[field.name] = nullable(UUID)
            else:
                properties[field.name] = nullable(STRING)
    return obj(properties, description="fields present depend on identity.entity_type")


_RECEIPT_COMMON = {
    "format": {"type": "string", "const": "plant-receipt/v1"},
    "origin": {**STRING, "description": "the log's checkpoint origin line"},
    "time": {**INDEX, "description": "milliseconds since the Unix epoch"},
    "key_id": {"type": "string", "pattern": "^[0-9a-f]{8}$"},
    "signature": {**STRING, "description": "Ed25519, 64 bytes, base64"},
}
_BATCH_FIELDS = {
    "first": INDEX,
    "count": {"type": "integer", "minimum": 1},
    "root": {**HASH_B64, "description": "MTH of the leaf hashes of [first, first + count)"},
}
BATCH_RECEIPT = obj(
    {**_RECEIPT_COMMON, "type": {"type": "string", "const": "batch"}, **_BATCH_FIELDS},
    [*_RECEIPT_COMMON, "type", *_BATCH_FIELDS],
    description="One signature over a range of the log (docs/formats.md, Write receipts)",
)
RECEIPT = {
    "oneOf": [
        obj(
            {
                **_RECEIPT_COMMON,
                "type": {"type": "string", "const": "entry"},
                "index": INDEX,
                "leaf_hash": HASH_B64,
            },
            [*_RECEIPT_COMMON, "type", "index", "leaf_hash"],
        ),
        obj(
            {
                **_RECEIPT_COMMON,
                "type": {"type": "string", "const": "batch_entry"},
                **_BATCH_FIELDS,
                "index": INDEX,
                "leaf_hash": HASH_B64,
                "path": array(HASH_B64, maxItems=63),
            },
            [*_RECEIPT_COMMON, "type", *_BATCH_FIELDS, "index", "leaf_hash", "path"],
        ),
    ],
    "description": "The write's signed receipt: the log's key says this entry's leaf hash is "
    "at this index of this log (docs/formats.md, Write receipts); check it offline with "
    "`plant verify-receipt`",
}


DOCUMENT = obj(
    {
        "identity": obj(
            {
                "id": UUID,
                "entity_type": {"type": "string", "enum": ENTITY_TYPES},
                "tenant": STRING,
                "name": STRING,
                "external_id": nullable(STRING),
            },
            ["id", "entity_type", "tenant", "name"],
        ),
        "lifecycle": obj(
            {
                "status": {"type": "string", "enum": list(lifecycle.STATUSES)},
                "created_at": TIME,
                "updated_at": TIME,
                "effective_from": TIME,
                "effective_to": nullable(TIME),
            },
            ["status", "created_at", "updated_at"],
        ),
        "versioning": obj(
            {
                "version": {"type": "integer", "minimum": 1},
                "previous_digest": nullable(DIGEST),
                "amendment_reason": STRING,
                "amended_by": STRING,
            },
            ["version", "previous_digest", "amendment_reason", "amended_by"],
        ),
        "constitutional_alignment": obj(
            {"rule_results": array(RULE_RESULT), "certification": nullable(CERTIFICATION_RECORD)},
            ["rule_results", "certification"],
        ),
        "audit_trail": obj(
            {
                "actor": STRING,
                "request_id": STRING,
                "action": STRING,
                "log_index": INDEX,
                "leaf_hash": HASH_B64,
                "digest": DIGEST,
            },
            ["actor", "request_id", "action", "log_index", "leaf_hash", "digest"],
        ),
        "metadata": _section("metadata"),
        "relationships": _section("relationships"),
    },
    list(SECTIONS),
    description="One version of an entity: the seven sections, plus where it sits in the log",
)
CHECK = obj(
    {
        "check": STRING,
        "result": {"type": "string", "enum": ["pass", "fail"]},
        "message": STRING,
        "description": STRING,
        "remediation": STRING,
    },
    ["check", "result", "message"],
)
ENVELOPE = obj(
    {
        "payload": B64,
        "payloadType": {"type": "string", "const": "application/vnd.in-toto+json"},
        "signatures": array(obj({"keyid": STRING, "sig": B64}, ["keyid", "sig"]), minItems=1),
    },
    ["payload", "payloadType", "signatures"],
    description="DSSE envelope over an in-toto Statement v1",
)
FINDING = obj(
    {
        "kind": {"type": "string", "enum": list(FINDING_KINDS)},
        "tenant": STRING,
        "entity_type": nullable(STRING),
        "entity_id": nullable(STRING),
        "version": nullable(INTEGER),
        "log_index": nullable(INTEGER),
        "section": nullable(STRING),
        "field": nullable(STRING),
        "rule": nullable(STRING),
        "detail": STRING,
        "certifier": {**STRING, "description": "an L0-06 violation's certifier"},
    },
    ["kind", "tenant", "detail"],
)
CHECKPOINT_REF = obj(
    {"note": STRING, "size": INDEX, "root": HASH_B64},
    ["note", "size", "root"],
)

SCHEMAS: dict[str, dict[str, Any]] = {
    "Problem": PROBLEM_SCHEMA,
    "Violation": VIOLATION,
    "Check": CHECK,
    "Health": obj(
        {
            "status": {"type": "string", "const": "ok"},
            "database": obj(
                {"reachable": {"type": "boolean"}, "round_trip_ms": {"type": "number"}},
                ["reachable", "round_trip_ms"],
            ),
            "migration_revision": nullable(STRING),
            "keys": obj(
                {"active_key_id": STRING, "reload_error": nullable(STRING)},
                ["active_key_id", "reload_error"],
            ),
            "tenant": STRING,
            "log_size": INDEX,
            "checkpoint": nullable(
                obj(
                    {
                        "size": INDEX,
                        "created_at": TIME,
                        "age_seconds": {"type": "number"},
                        "unsealed_entries": INDEX,
                    },
                    ["size", "created_at", "age_seconds", "unsealed_entries"],
                )
            ),
            "audit": nullable(
                obj(
                    {
                        "id": UUID,
                        "mode": {"type": "string", "enum": ["incremental", "full"]},
                        "status": {"type": "string", "enum": ["running", "completed", "failed"]},
                        "started_at": TIME,
                        "finished_at": nullable(TIME),
                        "finding_count": nullable(INDEX),
                    },
                    ["id", "mode", "status", "started_at", "finished_at", "finding_count"],
                )
            ),
        },
        ["status"],
    ),
    "OpenAPIDocument": obj(
        {"openapi": STRING, "info": {"type": "object"}, "paths": {"type": "object"}},
        ["openapi", "info", "paths"],
    ),
    "Document": DOCUMENT,
    "Receipt": RECEIPT,
    "BatchReceipt": BATCH_RECEIPT,
    "CreatedDocument": {
        "allOf": [{"$ref": "#/components/schemas/Document"}, obj({"receipt": ref("Receipt")})],
        "description": "The new version and its signed receipt",
    },
    "WrittenDocument": {
        "allOf": [
            {"$ref": "#/components/schemas/Document"},
            obj(
                {
                    "receipt": ref("Receipt"),
                    "cascade": array(
                        obj(
                            {
                                "kind": {"type": "string", "enum": list(KINDS)},
                                "id": UUID,
                                "version": {"type": "integer", "minimum": 2},
                                "status": {
                                    "type": "string",
                                    "enum": ["pending_certification", "suspended"],
                                },
                                "log_index": INDEX,
                            },
                            ["kind", "id", "version", "status", "log_index"],
                        ),
                        description="every certified entity this write moved out of "
                        "certified, each by a version of its own (actor system) in the same "
                        "transaction: what referenced this entity, directly or through others",
                    ),
                },
                ["receipt", "cascade"],
            ),
        ],
        "description": "The new version, its signed receipt (one batch receipt with the "
        "cascade's versions when it caused one) and the certification cascade it caused",
    },
    "BatchCreated": obj(
        {
            "items": array(
                obj(
                    {
                        "id": UUID,
                        "version": {"type": "integer", "const": 1},
                        "log_index": INDEX,
                        "digest": DIGEST,
                        "leaf_hash": HASH_B64,
                        "receipt_path": array(
                            HASH_B64, description="the entry's path to the batch receipt's root"
                        ),
                    },
                    ["id", "version", "log_index", "digest", "leaf_hash", "receipt_path"],
                )
            ),
            "receipt": ref("BatchReceipt"),
        },
        ["items", "receipt"],
    ),
    "EntityPage": obj(
        {
            "items": array(ref("Document")),
            "total": {**INDEX, "description": "how many match the filters, on every page"},
            "next_cursor": nullable(STRING),
        },
        ["items", "total", "next_cursor"],
    ),
    "VersionList": obj(
        {
            "id": UUID,
            "entity_type": {"type": "string", "enum": ENTITY_TYPES},
            "versions": array(
                obj(
                    {
                        "version": {"type": "integer", "minimum": 1},
                        "status": {"type": "string", "enum": list(lifecycle.STATUSES)},
                        "digest": DIGEST,
                        "previous_digest": nullable(DIGEST),
                        "log_index": INDEX,
                        "leaf_hash": HASH_B64,
                        "amended_by": STRING,
                        "amendment_reason": STRING,
                        "action": STRING,
                        "created_at": TIME,
                    },
                    ["version", "status", "digest", "previous_digest", "log_index", "leaf_hash"],
                )
            ),
        },
        ["id", "entity_type", "versions"],
    ),
    "VersionProof": obj(
        {"index": INDEX, "tree_size": INDEX, "proof": array(HASH_B64), "checkpoint": STRING},
        ["index", "tree_size", "proof", "checkpoint"],
    ),
    "CurrentProof": obj(
        {
            "format": {"type": "string", "const": "plant-current-proof/1"},
            "tenant": STRING,
            "kind": nullable({"type": "string", "enum": ENTITY_TYPES}),
            "entity_id": UUID,
            "checkpoint": {**STRING, "description": "the latest signed C2SP checkpoint"},
            "map_commit": ref("ProvenEntry"),
            "map_proof": obj(
                {
                    "siblings": array(HASH_B64, maxItems=256),
                    "other_leaf": nullable(
                        obj({"key": HASH_B64, "value_hash": HASH_B64}, ["key", "value_hash"])
                    ),
                },
                ["siblings", "other_leaf"],
            ),
            "head": nullable({**B64, "description": "the head value; null: absent"}),
            "version": nullable(ref("ProvenEntry")),
            "certificate": nullable(ref("ProvenEntry")),
        },
        [*CURRENT_PROOF_FIELDS],
        description="Proof of an entity's current version, or of its absence, against the "
        "map commit that ends the checkpoint (docs/formats.md, Current-version proof); "
        "checked offline by plant verify-current",
    ),
    "ProvenEntry": obj(
        {"index": INDEX, "entry": B64, "proof": array(HASH_B64)},
        ["index", "entry", "proof"],
        description="a log entry's exact bytes and its inclusion proof at the checkpoint",
    ),
    "LogEntry": obj(
        {
            "index": INDEX,
            "entry_type": {"type": "string", "enum": ENTRY_TYPES},
            "entity_type": {"type": "string", "enum": ENTRY_KINDS},
            "entity_id": UUID,
            "version": {"type": "integer", "minimum": 1},
            "body": {**B64, "description": "the exact RFC 8785 bytes that were hashed"},
            "leaf_hash": HASH_B64,
            "digest": DIGEST,
            "created_at": nullable(
                {**TIME, "description": "the time the write's signed receipt holds (null: none)"}
            ),
            "receipt": nullable(ref("Receipt")),
        },
        ["index", "entry_type", "entity_type", "entity_id", "version", "body", "leaf_hash"],
    ),
    "InclusionProof": obj(
        {"index": INDEX, "tree_size": INDEX, "leaf_hash": HASH_B64, "proof": array(HASH_B64)},
        ["index", "tree_size", "leaf_hash", "proof"],
    ),
    "ConsistencyProof": obj(
        {"old_size": INDEX, "new_size": INDEX, "proof": array(HASH_B64)},
        ["old_size", "new_size", "proof"],
    ),
    "PublicKeys": obj(
        {"active": STRING, "keys": array(STRING, minItems=1)},
        ["active", "keys"],
        description="C2SP vkeys; the active key signs new checkpoints",
    ),
    "Seal": obj(
        {
            "tree_size": INDEX,
            "root_hash": HASH_B64,
            "created": {"type": "boolean"},
            "checkpoint": STRING,
        },
        ["tree_size", "root_hash", "created", "checkpoint"],
    ),
    "Envelope": ENVELOPE,
    "Certification": obj(
        {
            "certificate": ref("Envelope"),
            "certificate_log_index": INDEX,
            "certificate_digest": DIGEST,
            "certificate_receipt": ref("Receipt"),
            "statement": {"type": "object", "description": "the in-toto Statement v1"},
            "entity": ref("Document"),
            "receipt": ref("Receipt"),
        },
        [
            "certificate",
            "certificate_log_index",
            "certificate_digest",
            "certificate_receipt",
            "statement",
            "entity",
            "receipt",
        ],
    ),
    "BatchResult": obj(
        {
            "certified": INDEX,
            "failed": INDEX,
            "results": array(
                obj(
                    {
                        "index": INDEX,
                        "status": INTEGER,
                        "certificate_digest": DIGEST,
                        "certificate_log_index": INDEX,
                        "certificate_receipt": ref("Receipt"),
                        "receipt": {
                            **ref("Receipt"),
                            "description": "the certified version's receipt",
                        },
                        "problem": ref("Problem"),
                        "error": STRING,
                    },
                    ["index", "status"],
                )
            ),
        },
        ["certified", "failed", "results"],
    ),
    "CertificateList": obj(
        {
            "id": UUID,
            "certificates": array(
                obj(
                    {
                        "log_index": INDEX,
                        "certified_version": INTEGER,
                        "certificate_digest": DIGEST,
                        "envelope": ref("Envelope"),
                        "created_at": TIME,
                    },
                    ["log_index", "certified_version", "certificate_digest", "envelope"],
                )
            ),
        },
        ["id", "certificates"],
    ),
    "RuleCatalogue": obj(
        {
            "rules": array(
                obj(
                    {
                        "id": STRING,
                        "kinds": array(STRING),
                        "stage": {"type": "string", "enum": ["write", "certify"]},
                        "severity": STRING,
                        "description": STRING,
                        "remediation": STRING,
                    },
                    ["id", "kinds", "stage", "severity", "description", "remediation"],
                )
            )
        },
        ["rules"],
    ),
    "Finding": FINDING,
    "EntityAuditReport": obj(
        {
            "entity_type": {"type": "string", "enum": ENTITY_TYPES},
            "entity_id": UUID,
            "entries": INDEX,
            "sealed": INDEX,
            "findings": array(ref("Finding")),
        },
        ["entity_type", "entity_id", "entries", "sealed", "findings"],
    ),
    "Report": obj(
        {
            "summary": obj(
                {
                    "tenant": STRING,
                    "generated_at": TIME,
                    "generated_by": STRING,
                    "filters": {"type": "object"},
                    "checkpoint": nullable(ref("CheckpointRef")),
                    "counts": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "additionalProperties": INDEX,
                        },
                    },
                    "total": INDEX,
                    "latest_audit": nullable({"type": "object"}),
                },
                ["tenant", "generated_at", "checkpoint", "counts", "total", "latest_audit"],
            ),
            "entities": array(
                obj(
                    {
                        "entity_type": {"type": "string", "enum": ENTITY_TYPES},
                        "id": UUID,
                        "name": STRING,
                        "version": {"type": "integer", "minimum": 1},
                        "status": {"type": "string", "enum": list(lifecycle.STATUSES)},
                        "digest": DIGEST,
                        "log_index": INDEX,
                        "certified_version": nullable(INTEGER),
                        "certifier": nullable(STRING),
                        "certified_at": nullable(TIME),
                        "certificate_digest": nullable(DIGEST),
                        "rule_results": array(RULE_RESULT),
                    },
                    ["entity_type", "id", "name", "version", "status", "digest", "log_index"],
                )
            ),
        },
        ["summary", "entities"],
    ),
    "CheckpointRef": CHECKPOINT_REF,
    "EvidenceBundle": obj(
        {
            "format": {"type": "string", "const": "plant-evidence-bundle/3"},
            "tenant": STRING,
            "origin": STRING,
            "created_at": TIME,
            "checkpoint": ref("CheckpointRef"),
            "public_keys": array(STRING, minItems=1),
            "previous_checkpoint": nullable(
                obj(
                    {
                        "note": STRING,
                        "size": INDEX,
                        "root": HASH_B64,
                        "consistency_proof": array(HASH_B64),
                    },
                    ["note", "size", "root", "consistency_proof"],
                )
            ),
            "filters": obj(
                {
                    "kind": nullable({"type": "string", "enum": ENTITY_TYPES}),
                    "entity": nullable(UUID),
                },
                ["kind", "entity"],
            ),
            "entries": array(
                obj(
                    {
                        "index": INDEX,
                        "entry_type": {"type": "string", "enum": ENTRY_TYPES},
                        "entity_type": {"type": "string", "enum": ENTRY_KINDS},
                        "entity_id": UUID,
                        "version": {"type": "integer", "minimum": 1},
                        "body": B64,
                        "leaf_hash": HASH_B64,
                        "inclusion_proof": array(HASH_B64),
                        "receipt": nullable(ref("Receipt")),
                    },
                    [
                        "index",
                        "entry_type",
                        "entity_id",
                        "version",
                        "body",
                        "leaf_hash",
                        "receipt",
                    ],
                )
            ),
            "current_proofs": {
                **nullable(array(ref("CurrentProof"))),
                "description": "the current proof of each selected entity; null past 1,000",
            },
            "statement": obj(
                {
                    "payload": B64,
                    "payloadType": {
                        "type": "string",
                        "const": "application/vnd.plant.evidence-bundle+json",
                    },
                    "signatures": array(
                        obj({"keyid": STRING, "sig": B64}, ["keyid", "sig"]), minItems=1
                    ),
                },
                ["payload", "payloadType", "signatures"],
                description="DSSE envelope over the bundle's header and entry list, signed "
                "with the log's key (see docs/formats.md, Evidence bundle)",
            ),
        },
        [
            "format",
            "tenant",
            "origin",
            "created_at",
            "checkpoint",
            "public_keys",
            "previous_checkpoint",
            "filters",
            "entries",
            "statement",
        ],
    ),
}
for _kind in KINDS.values():
    SCHEMAS[f"{schema_name(_kind)}Create"] = create_schema(_kind)
    SCHEMAS[f"{schema_name(_kind)}Amendment"] = amend_schema(_kind)
SCHEMAS["StatusChange"] = STATUS_CHANGE
SCHEMAS["TeamAssignment"] = TEAM_ASSIGNMENT
