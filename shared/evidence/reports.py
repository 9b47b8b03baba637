"""Compliance reports: every current entity with its certification and rule results, plus a
summary, produced row by row so that memory stays flat however large the tenant is."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import tempfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared import config
from shared.errors import InvalidQuery
from shared.evidence.slots import Slot
from shared.integrity import canonical, digests
from shared.integrity.canonical import now_text
from shared.registry import certification
from shared.rules import lifecycle
from shared.rules.kinds import KINDS
from shared.security.principal import Principal
from shared.storage import tree

BATCH = 500
FORMATS = ("json", "csv", "pdf")
CSV_COLUMNS = (
    "entity_type", "id", "name", "version", "status", "digest", "log_index",
    "certified_version", "certifier", "certified_at", "certificate_digest",
    "rules_passed", "rules_failed",
)  # fmt: skip


@dataclass(frozen=True)
class Query:
    format: str
    kind: str | None  # entity type
    status: str | None


QUERY = ("format", "kind", "status")  # the query parameters the report takes


def parse_query(query: dict[str, str]) -> Query:
    """The report's filters and format; a value it does not take is a 422 naming each one
    (the Router refuses a parameter outside QUERY before)."""
    errors: list[dict[str, str]] = []
    fmt = query.get("format") or "json"
    if fmt not in FORMATS:
        errors.append({"field": "format", "message": f"must be one of {list(FORMATS)}"})
    slug = query.get("kind") or None
    if slug is not None and slug not in KINDS:
        errors.append({"field": "kind", "message": f"must be one of {sorted(KINDS)}"})
    status = query.get("status") or None
    if status is not None and status not in lifecycle.STATUSES:
        errors.append({"field": "status", "message": f"must be one of {list(lifecycle.STATUSES)}"})
    if errors:
        raise InvalidQuery(errors)
    return Query(fmt, KINDS[slug].type if slug else None, status)


def summary(conn: Connection, principal: Principal, q: Query) -> dict[str, Any]:
    """Counts by kind and status, the latest checkpoint, and the latest audit's findings."""
    counts: dict[str, dict[str, int]] = {}
    for kind, status, n in conn.execute(
        text(
            "SELECT kind, status, count(*) FROM entity_heads "
            "WHERE (CAST(:kind AS text) IS NULL OR kind = :kind) "
            "AND (CAST(:status AS text) IS NULL OR status = :status) GROUP BY kind, status"
        ),
        {"kind": q.kind, "status": q.status},
    ):
        counts.setdefault(kind, {})[status] = int(n)
    last = tree.latest_checkpoint(conn)
    run = conn.execute(
        text(
            "SELECT CAST(id AS text), mode, checkpoint_size, finding_count, findings, "
            "to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') "
            "FROM audit_runs WHERE status = 'completed' ORDER BY finished_at DESC LIMIT 1"
        )
    ).first()
    audit = None
    if run is not None:
        audit = {
            "id": run[0],
            "mode": run[1],
            "checkpoint_size": run[2],
            "finding_count": run[3],
            "findings": run[4] or [],
            "finished_at": run[5],
        }
    return {
        "tenant": principal.tenant,
        "generated_at": now_text(),
        "generated_by": principal.subject,
        "filters": {"kind": q.kind, "status": q.status},
        "checkpoint": (
            {"size": last.size, "root": digests.b64(last.root), "note": last.note} if last else None
        ),
        "counts": counts,
        "total": sum(sum(c.values()) for c in counts.values()),
        "latest_audit": audit,
    }


def rows(conn: Connection, q: Query) -> Iterator[dict[str, Any]]:
    """Every current entity, in creation order, fetched in keyset batches."""
    after = -1
    while True:
        batch = conn.execute(
            text(
                "SELECT h.kind, CAST(h.entity_id AS text), h.name, h.version, h.status, "
                "h.first_index, h.log_index, e.digest, e.body, c.idx, c.version, c.digest, "
                "c.body FROM entity_heads h "
                "JOIN log_entries e ON e.tenant_id = h.tenant_id AND e.idx = h.log_index "
                # The entity's latest certificate, whatever its current version: after an
                # amendment the version's body no longer names it, the log still does.
                "LEFT JOIN LATERAL (SELECT idx, version, digest, body "
                "FROM log_entries WHERE tenant_id = h.tenant_id AND entity_id = h.entity_id "
                "AND entry_type = 'certificate' ORDER BY idx DESC LIMIT 1) c ON true "
                "WHERE h.first_index > :after "
                "AND (CAST(:kind AS text) IS NULL OR h.kind = :kind) "
                "AND (CAST(:status AS text) IS NULL OR h.status = :status) "
                "ORDER BY h.first_index LIMIT :limit"
            ),
            {"after": after, "kind": q.kind, "status": q.status, "limit": BATCH},
        ).all()
        for (kind, entity_id, name, version, status, _first, log_index, digest, body,
             c_index, c_version, c_digest, c_body) in batch:  # fmt: skip
            doc = canonical.read(bytes(body))
            alignment = doc["constitutional_alignment"]
            cert = alignment.get("certification") or {}
            if not cert and c_index is not None:
                # who and when as the certificate's signed statement says, not its row
                c_actor, c_at = _signed_terms(bytes(c_body))
                cert = {
                    "certified_version": int(c_version),
                    "certifier": c_actor,
                    "certified_at": c_at,
                    "certificate_digest": digests.label(bytes(c_digest)),
                    "certificate_log_index": int(c_index),
                }
            results = alignment.get("rule_results") or []
            yield {
                "entity_type": kind,
                "id": entity_id,
                "name": name,
                "version": int(version),
                "status": status,
                "digest": digests.label(bytes(digest)),
                "log_index": int(log_index),
                "certified_version": cert.get("certified_version"),
                "certifier": cert.get("certifier"),
                "certified_at": cert.get("certified_at"),
                "certificate_digest": cert.get("certificate_digest"),
                "certificate_log_index": cert.get("certificate_log_index"),
                "rule_results": results,
            }
        if len(batch) < BATCH:
            return
        after = int(batch[-1][5])


def _signed_terms(body: bytes) -> tuple[str | None, str | None]:
    try:
        envelope = canonical.read(body)
    except (canonical.CanonicalError, ValueError):
        return None, None
    return certification.signed_terms(envelope)


def json_chunks(head: dict[str, Any], entities: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """``{"summary": ..., "entities": [...]}`` one entity at a time."""
    yield b'{"summary":' + json.dumps(head, ensure_ascii=False).encode() + b',"entities":['
    for i, row in enumerate(entities):
        yield (b"," if i else b"") + json.dumps(row, ensure_ascii=False).encode()
    yield b"]}"


def csv_chunks(entities: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in entities:
        passed = sum(1 for r in row["rule_results"] if r.get("result") == "pass")
        flat = {**row, "rules_passed": passed, "rules_failed": len(row["rule_results"]) - passed}
        writer.writerow([_cell(flat[c]) for c in CSV_COLUMNS])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _cell(value: Any) -> Any:
    """A CSV cell; text a spreadsheet would run as a formula is prefixed with a quote."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def concerned(conn: Connection, q: Query, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The rows (as ``rows`` gives them) of the entities in scope that ``ids`` names: those a
    finding concerns. Bounded by the latest audit's findings, not by the tenant."""
    found: dict[str, dict[str, Any]] = {}
    wanted = set(ids)
    if not wanted:
        return found
    for row in rows(conn, q):
        if row["id"] in wanted:
            found[row["id"]] = row
            if len(found) == len(wanted):
                break
    return found


def report(
    principal: Principal, query: dict[str, str], slot: Slot | None = None
) -> tuple[dict[str, Any], Iterator[bytes]]:
    """The report's summary (known before the first byte is sent) and its body's chunks.

    JSON and CSV are generated inside one read-only snapshot transaction, a batch of rows at a
    time, for tenants of any size, into a spooled temporary file (1 MiB in memory, the rest on
    disk) while their SHA-256 is computed: the summary then carries ``envelope``, the detached
    DSSE envelope over the exact bytes (report_signing.envelope), and ``sha256``.

    The PDF is built whole before the response starts (so that a failure is a problem response
    rather than a stream cut short), rows read as they are drawn, then signed (PAdES). Up to
    ``PLANT_EXPORT_PDF_MAX_ENTITIES`` entities in scope it lists every one; above, it is the
    summary edition (cover, summary, exceptions, findings, how to verify), saying so on its
    cover, with the full table left to the CSV, the JSON and the bundle. While it renders,
    ``slot`` (if given) stops the work once the client has left.
    """
    principal.require("auditor")
    q = parse_query(query)
    stream = _stream(principal, q, slot)
    try:
        head = next(stream)
        if q.format == "pdf":
            from shared.evidence import report_signing

            body = report_signing.sign_pdf(next(stream))
            head["sha256"] = hashlib.sha256(body).hexdigest()
            return head, iter([body])
        return head, _spooled(head, q.format, stream)
    finally:
        stream.close()  # ends the transaction, also when rendering stopped early


def _spooled(head: dict[str, Any], fmt: str, chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Write ``chunks`` to a spooled file, hashing them; set head's sha256 and envelope; return
    the file's chunks (the file closes when they have been read or the iterator is dropped)."""
    from shared.evidence import report_signing

    spool = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115
    try:
        digest, size = hashlib.sha256(), 0
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            spool.write(chunk)
        head["sha256"] = digest.hexdigest()
        head["envelope"] = report_signing.envelope(head["sha256"], size, fmt, head)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return _read_spool(spool)


def _read_spool(spool: IO[bytes]) -> Iterator[bytes]:
    with spool:
        while chunk := spool.read(64 * 1024):
            yield chunk


def edition(head: dict[str, Any]) -> dict[str, Any]:
    """Which PDF this tenant gets: every entity up to the stated size, else the summary
    edition; ``text`` says so on the cover."""
    limit = config.settings().export_pdf_max_entities
    findings = len((head["latest_audit"] or {}).get("findings") or [])
    shown = min(findings, max(limit, 100))
    if head["total"] <= limit:
        return {"full": True, "limit": limit, "findings_shown": shown,
                "text": f"full: all {head['total']} entities in scope are listed, grouped "
                        "by kind"}  # fmt: skip
    return {
        "full": False,
        "limit": limit,
        "findings_shown": shown,
        "text": (
            f"summary: {head['total']:,} entities are in scope, more than the "
            f"{limit:,} a PDF lists (PLANT_EXPORT_PDF_MAX_ENTITIES), so this PDF holds the "
            "summary, the exceptions and the findings; the full table is in the CSV and "
            "JSON reports and the evidence bundle."
        ),
    }


def _stream(principal: Principal, q: Query, slot: Slot | None) -> Generator[Any, None, None]:
    from shared.storage.engine import database

    with database().transaction(principal.tenant, snapshot=True) as conn:
        head = summary(conn, principal, q)
        if q.format == "pdf":
            yield head
            yield _pdf(conn, head, q, slot)
            return
        # The first batch is read before the first byte goes out, so a database that cannot
        # serve it (a timeout, say) is a problem response, not a stream cut short.
        remaining = rows(conn, q)
        first = list(itertools.islice(remaining, 1))
        all_rows: Iterator[dict[str, Any]] = itertools.chain(first, remaining)
        if slot:  # spooled before the first byte is sent: no failed write would tell
            all_rows = slot.attended(all_rows)
        yield head
        if q.format == "json":
            yield from json_chunks(head, all_rows)
        else:
            yield from csv_chunks(all_rows)


def _pdf(conn: Connection, head: dict[str, Any], q: Query, slot: Slot | None) -> bytes:
    """The unsigned PDF of ``head``'s scope, read inside the snapshot ``conn`` holds."""
    from shared.evidence import report_signing
    from shared.evidence.pdf import render

    head["edition"] = edition(head)
    findings = (head["latest_audit"] or {}).get("findings") or []
    ids = [f["entity_id"] for f in findings if f.get("entity_id")]
    marked = concerned(conn, q, ids)

    def groups() -> Iterator[tuple[str, Iterator[dict[str, Any]]]]:
        for kind in sorted(head["counts"]):
            kind_rows = rows(conn, Query(q.format, kind, q.status))
            yield kind, slot.attended(kind_rows) if slot else kind_rows

    signing = report_signing.report_key().public()
    return render(head, groups() if head["edition"]["full"] else iter(()), marked, signing)
