"""The audit function's OpenAPI document."""

from __future__ import annotations

from functools import cache
from typing import Any

from shared.audit.params import MAX_RUNS_PAGE, MODES, RUNS_PAGE
from shared.web.openapi.builder import (
    ENTITY_ID,
    KIND,
    build,
    json_body,
    ok,
    operation,
    path_param,
    query_param,
)
from shared.web.openapi.schemas import (
    AUTH,
    BODY,
    INDEX,
    STRING,
    TIME,
    UUID,
    array,
    nullable,
    obj,
    ref,
)

DESCRIPTION = "Run and read audits; one entity's tamper report."

AUDIT_REQUEST = obj(
    {"mode": {"type": "string", "enum": list(MODES), "default": "incremental"}},
    additionalProperties=False,
)

AUDIT_RUN = obj(
    {
        "id": UUID,
        "mode": {"type": "string", "enum": list(MODES)},
        "status": {"type": "string", "enum": ["running", "completed", "failed"]},
        "requested_by": STRING,
        "started_at": TIME,
        "finished_at": nullable(TIME),
        "verified_from": nullable(INDEX),
        "verified_to": nullable(INDEX),
        "checkpoint_size": nullable(INDEX),
        "finding_count": nullable(INDEX),
        "findings": nullable(array(ref("Finding"))),
        "summary": nullable({"type": "object"}),
    },
    ["id", "mode", "status", "requested_by", "started_at", "finished_at", "findings", "summary"],
)
SCHEMAS = {
    "AuditRequest": AUDIT_REQUEST,
    "AuditRun": AUDIT_RUN,
    "AuditRunList": obj({"runs": array(ref("AuditRun"))}, ["runs"]),
}


def paths() -> dict[str, Any]:
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


@cache
def document() -> dict[str, Any]:
    return build("audit", DESCRIPTION, paths(), SCHEMAS)
