"""The export function: compliance reports (JSON, CSV, PDF) and offline evidence bundles
(`/export/...`)."""

from __future__ import annotations

import itertools

import flask

from shared import bundle, health, openapi, reports
from shared.http import Call, Router, json_response, stream_response

router = Router("export")

MIMETYPES = {"json": "application/json", "csv": "text/csv", "pdf": "application/pdf"}
# A PDF opens in a browser: nothing in it may run or load anything.
PDF_POLICY = "default-src 'none'; sandbox"


@router.route("GET", "/openapi.json")
def openapi_document(call: Call) -> flask.Response:
    return json_response(openapi.document("export"))


@router.route("GET", "/healthz")
def healthz(call: Call) -> flask.Response:
    return json_response(health.healthz(call))


@router.route("GET", "/report")
def report(call: Call) -> flask.Response:
    head, chunks = reports.report(call.principal, call.query)
    fmt = call.query.get("format") or "json"
    checkpoint = head["checkpoint"] or {}
    headers = {
        "X-Checkpoint-Size": str(checkpoint.get("size", 0)),
        "X-Checkpoint-Root": checkpoint.get("root") or "",
        "Content-Disposition": f'attachment; filename="plant-report-{head["tenant"]}.{fmt}"',
    }
    if fmt == "pdf":
        headers["Content-Security-Policy"] = PDF_POLICY
    return stream_response(chunks, MIMETYPES[fmt], headers)


@router.route("GET", "/bundle")
def evidence_bundle(call: Call) -> flask.Response:
    parts = bundle.build(call.principal, call.query)
    head = next(parts)
    headers = {
        "X-Checkpoint-Size": str(head["checkpoint"]["size"]),
        "X-Checkpoint-Root": head["checkpoint"]["root"],
        "Content-Disposition": f'attachment; filename="plant-bundle-{head["tenant"]}.json"',
    }
    chunks = bundle.json_chunks(itertools.chain([head], parts))
    return stream_response(chunks, "application/json", headers)
