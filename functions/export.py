"""The export function: compliance reports (JSON, CSV, PDF) and offline evidence bundles
(`/export/...`)."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable

import flask

from shared.evidence import bundle, report_signing, reports
from shared.evidence import slots as export_slots
from shared.evidence.slots import ClientGone, Slot
from shared.security.principal import READ_ROLES
from shared.web import health, openapi
from shared.web.router import Call, Router, json_response, stream_response

router = Router("export")

MIMETYPES = {"json": "application/json", "csv": "text/csv", "pdf": "application/pdf"}
# A PDF opens in a browser: nothing in it may run or load anything.
PDF_POLICY = "default-src 'none'; sandbox"


@router.route("GET", "/openapi.json", public=True)
def openapi_document(call: Call) -> flask.Response:
    return json_response(openapi.document("export"))


@router.route("GET", "/healthz", public=True, query=health.QUERY)
def healthz(call: Call) -> flask.Response:
    return json_response(health.healthz(call))


def _exporting(call: Call, what: str, build: Callable[[Slot], flask.Response]) -> flask.Response:
    """Run ``build`` holding one of the process's export slots (503 + Retry-After when none is
    free), taken after authentication and before any database work, and released when the
    response ends, fails, is closed by the server (the client left) or was never sent."""
    call.principal  # noqa: B018 (authenticates: a stranger never learns the load)
    slot = export_slots.slots().take(call.request.environ, what)
    try:
        response = build(slot)
    except ClientGone:
        slot.close("stopped: the client went away")
        raise
    except BaseException:
        slot.close("failed")
        raise
    response.call_on_close(slot.close)
    return response


@router.route("GET", "/report", query=reports.QUERY)
def report(call: Call) -> flask.Response:
    fmt = call.query.get("format") or "json"
    return _exporting(call, f"report ({fmt})", lambda slot: _report(call, fmt, slot))


def _report(call: Call, fmt: str, slot: Slot) -> flask.Response:
    head, chunks = reports.report(call.principal, call.query, slot)
    checkpoint = head["checkpoint"] or {}
    headers = {
        "X-Checkpoint-Size": str(checkpoint.get("size", 0)),
        "X-Checkpoint-Root": checkpoint.get("root") or "",
        "Content-Disposition": f'attachment; filename="plant-report-{head["tenant"]}.{fmt}"',
    }
    headers["X-Report-SHA256"] = head["sha256"]
    if fmt == "pdf":
        headers["Content-Security-Policy"] = PDF_POLICY
    else:  # the detached DSSE envelope over the body's exact bytes (docs/formats.md)
        headers["X-Report-Envelope"] = report_envelope_header(head["envelope"])
    return stream_response(slot.stream(chunks), MIMETYPES[fmt], headers)


def report_envelope_header(envelope: dict[str, object]) -> str:
    """The envelope as a header value: base64 (standard, padded) of its compact JSON."""
    return base64.b64encode(json.dumps(envelope, separators=(",", ":")).encode()).decode()


@router.route("GET", "/report/certificate")
def report_certificate(call: Call) -> flask.Response:
    """The report-signing key's certificate (PEM) and DSSE vkey: what validates a report."""
    call.principal.require(*READ_ROLES)
    return json_response(report_signing.report_key().public())


@router.route("GET", "/bundle", query=bundle.QUERY)
def evidence_bundle(call: Call) -> flask.Response:
    return _exporting(call, "bundle", lambda slot: _bundle(call, slot))


def _bundle(call: Call, slot: Slot) -> flask.Response:
    parts = bundle.build(call.principal, call.query)
    head = next(parts)
    headers = {
        "X-Checkpoint-Size": str(head["checkpoint"]["size"]),
        "X-Checkpoint-Root": head["checkpoint"]["root"],
        "Content-Disposition": f'attachment; filename="plant-bundle-{head["tenant"]}.json"',
    }
    chunks = bundle.json_chunks(itertools.chain([head], parts))
    # json_chunks cannot close ``parts`` through the chain: the slot closes it, ending the
    # bundle's transaction as soon as the client is gone.
    return stream_response(slot.stream(chunks, parts), "application/json", headers)
