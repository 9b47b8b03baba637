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


@cache
def document() -> dict[str, Any]:
    return build("export", DESCRIPTION, paths(), SCHEMAS)
