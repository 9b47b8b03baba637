"""The export function's OpenAPI document."""

from __future__ import annotations

from functools import cache
from typing import Any

from shared.evidence.reports import FORMATS
from shared.rules import lifecycle
from shared.web.openapi.builder import build, ok, operation, query_param
from shared.web.openapi.schemas import AUTH, JSON, SLUGS, STRING, UUID, ref

DESCRIPTION = "Compliance reports (JSON, CSV, PDF) and offline evidence bundles."
SCHEMAS: dict[str, dict[str, Any]] = {}


EXPORT_SLOTS = (
    "At most PLANT_EXPORT_CONCURRENCY exports run at once in an instance (2 by default): "
    "another gets 503 with Retry-After before any work is done. An export stops its work "
    "when its client disconnects."
)


def paths() -> dict[str, Any]:
    checkpoint_headers = {
        "X-Checkpoint-Size": {"required": True, "schema": STRING},
        "X-Checkpoint-Root": {"required": True, "schema": STRING},
        "Content-Disposition": {"required": True, "schema": STRING},
    }
    report = {
        "description": "The report, streamed",
        "headers": checkpoint_headers,
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
        "JSON and CSV are streamed at any size. A PDF holds at most "
        "PLANT_EXPORT_PDF_MAX_ENTITIES entities plus the latest audit's findings (10,000 by "
        "default): a larger one is refused with 422 limit-exceeded naming `format` and the "
        "limit, before anything is rendered (ask for CSV, JSON or a bundle, or filter). "
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
    return {"/export/report": {"get": report_op}, "/export/bundle": {"get": bundle_op}}


@cache
def document() -> dict[str, Any]:
    return build("export", DESCRIPTION, paths(), SCHEMAS)
