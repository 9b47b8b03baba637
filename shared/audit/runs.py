"""Audit runs: the ``audit_runs`` table (one running run a tenant, its findings and summary
stored when it ends) and the run itself, its passes in order over one snapshot."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from shared import tlog
from shared.audit import (
    certificates,
    chains,
    checkpoints,
    cutover,
    defences,
    entries,
    heads,
    history,
    map_check,
    nodes,
    params,
    presence,
    receipts,
)  # fmt: skip
from shared.audit.findings import Finding
from shared.audit.state import AuditState, Parts, Row
from shared.audit.workers import Workers
from shared.config import settings
from shared.errors import IntegrityViolation, NotFound
from shared.integrity import canonical, digests
from shared.registry import collector
from shared.rules import path_params, query_params
from shared.security.principal import Principal
from shared.storage import tree
from shared.storage.engine import database
from shared.tlog import anchors

STALE_RUN = "15 minutes"

# The audit_runs columns a run document is read from, in _run_doc's order.
_RUN_COLUMNS = (
    "CAST(id AS text)",
    "mode",
    "status",
    "requested_by",
    "to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
    "to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
    "verified_from",
    "verified_to",
    "checkpoint_size",
    "finding_count",
    "findings",
    "summary",
)


def _start(principal: Principal, mode: str) -> tuple[str, bool]:
    """Record a running audit, or return the one already running (and False)."""
    run_id = str(uuid.uuid4())
    db = database()
    with db.transaction(principal.tenant) as conn:
        conn.execute(
            text(
                "UPDATE audit_runs SET status = 'failed', finished_at = now(), "
                "summary = '{\"error\": \"abandoned\"}' WHERE status = 'running' "
                f"AND (started_at < now() - interval '{STALE_RUN}' OR started_at > now())"
            )
        )
    try:
        with db.transaction(principal.tenant) as conn:
            conn.execute(
                text(
                    "INSERT INTO audit_runs (tenant_id, id, mode, status, requested_by) VALUES "
                    "(current_setting('plant.tenant'), CAST(:id AS uuid), :mode, 'running', :by)"
                ),
                {"id": run_id, "mode": mode, "by": principal.subject},
            )
        return run_id, True
    except IntegrityError:
        with db.transaction(principal.tenant) as conn:
            running = conn.execute(
                text("SELECT CAST(id AS text) FROM audit_runs WHERE status = 'running'")
            ).scalar()
        if running is None:  # it finished meanwhile: start ours
            return _start(principal, mode)
        return running, False


def run(
    principal: Principal,
    body: Any,
    progress: Callable[[int, int], None] | None = None,
    parts: Parts | None = None,
) -> tuple[dict[str, Any], bool]:
    """Run an audit (or return the running one). Returns (run document, started). A full
    audit given ``parts`` takes the ranges they scanned from them (``shared.audit.parts``)."""
    principal.require("auditor")
    mode = params.mode(body)
    run_id, started = _start(principal, mode)
    if not started:
        return get_run(principal, run_id), False
    try:
        result = _audit(principal.tenant, mode, progress, parts)
    except Exception as exc:
        with database().transaction(principal.tenant) as conn:
            conn.execute(
                text(
                    "UPDATE audit_runs SET status = 'failed', finished_at = now(), "
                    "summary = CAST(:s AS jsonb) WHERE id = CAST(:id AS uuid)"
                ),
                {"id": run_id, "s": canonical.dumps({"error": type(exc).__name__}).decode()},
            )
        raise
    report = history.report(principal.tenant, run_id, mode, principal.subject, result)
    with database().transaction(principal.tenant) as conn:
        try:
            with conn.begin_nested():
                history.append(conn, principal.tenant, report)
        except IntegrityError:
            pass  # the log's counter was moved back onto an entry: this run's findings say so
        conn.execute(
            text(
                "UPDATE audit_runs SET status = 'completed', finished_at = now(), "
                "verified_from = :vf, verified_to = :vt, checkpoint_size = :cs, "
                "finding_count = :n, findings = CAST(:f AS jsonb), summary = CAST(:s AS jsonb) "
                "WHERE id = CAST(:id AS uuid)"
            ),
            {
                "id": run_id,
                "vf": result["verified_from"],
                "vt": result["verified_to"],
                "cs": result["checkpoint_size"],
                "n": len(result["findings"]),
                "f": canonical.dumps(result["findings"]).decode(),
                "s": canonical.dumps(result["summary"]).decode(),
            },
        )
    return get_run(principal, run_id), True


def _audit(
    tenant: str,
    mode: str,
    progress: Callable[[int, int], None] | None = None,
    parts: Parts | None = None,
) -> dict[str, Any]:
    """One run's passes over one snapshot: its findings, what it verified and its summary."""
    findings: list[Finding] = []
    store = anchors.anchor_store(settings())
    try:
        tlog.seal(tenant)
    except IntegrityViolation as exc:
        kind = exc.extensions.get("finding") or "checkpoint_invalid"
        named = ("rollback", "missing", "altered", "inserted", "checkpoint_invalid", "map_invalid")
        if kind not in named:
            kind = "checkpoint_invalid"
        findings.append(Finding(kind, tenant, f"sealing refused: {exc.detail}"))
    # One snapshot for every read: a write committed while the audit runs is either wholly
    # in it or wholly out of it (never counted as past the log's size, say). The anchor is
    # read first: a seal commits, then anchors, so what is anchored now is in the snapshot.
    anchored, anchored_sizes = store.latest(tenant), store.sizes(tenant)
    with (
        collector.paused(),  # its summaries live until it ends: nothing for the collector
        database().transaction(tenant, snapshot=True) as conn,
        Workers(settings().audit_workers) as workers,
    ):
        state = AuditState(conn, tenant, workers, parts=parts)
        start = since = history.resume(conn, tenant, mode)
        checkpoints.anchor(state, anchored)
        latest = checkpoints.verified(state, since)
        checkpoints.cosigned(state)
        rows: list[Row] = []
        # fed by the entries pass (a merge's: by the parts, then by its own reads past them),
        # so the log is read once
        replay = map_check.Replay(start)
        if latest is not None and start <= latest.size:
            rows = entries.checked(state, start, latest, progress, replay)
        verified_to = latest.size if latest else 0
        size = tree.log_size(conn)
        last = tree.latest_checkpoint(conn)
        last_size = last.size if last else 0
        if last is not None and last_size > max(start, verified_to):
            # past the newest valid checkpoint but under a stored one that failed: its entries
            # are still checked against their rows and stored leaves (an edit inside a bad
            # checkpoint's range is named), though nothing there counts as verified
            rows += entries.checked(state, max(start, verified_to), last, progress)
        entries.beyond(state, size, last_size)
        touched = chains.rechecked(state, start, verified_to)
        certificates.checked(state, rows)
        heads.checked(state, touched, start)
        presence.heads(state, touched)
        # no later pass reads the summaries: freed before the receipts pass reads the log
        # again (held to the end, they and the map below made its peak: ~190 MB over them
        # at 1,000,000 entries)
        state.latest, state.range_summaries = {}, None
        nodes.checked(state, start, last_size)
        logged = history.checked(state, start, verified_to)
        checkpoints.present(state, anchored_sizes, logged)  # all: one row a seal
        defences.checked(state)
        map_check.checked(state, replay, start, verified_to)
        del replay  # the heads the log gives and their map: nothing later needs them
        cutover.checked(state)  # one row: every run
        # an entry already named is not again (the parts' ranges: from the parts)
        receipts.checked(state, parts.receipts(state) if parts and start == 0 else start, size)
        nodes.consistent(state, start, last_size)  # last: below it, what is named already
        all_findings = _dedupe(state.findings, findings)
        summary = {"parts": parts.summary()} if parts else {}
        return {
            "verified_from": start,
            "verified_to": verified_to,
            "checkpoint_size": verified_to,
            "findings": [f.as_dict() for f in all_findings],
            "summary": {
                "mode": mode,
                "entries_verified": state.entries_verified,
                "rows_read": state.rows_read,
                "findings_by_kind": _count(all_findings),
                "checkpoint": {
                    "size": verified_to,
                    "root": digests.b64(latest.root) if latest else None,
                },
                **summary,
            },
        }


def _dedupe(found: list[Finding], sealing: list[Finding]) -> list[Finding]:
    """Repeats dropped; a refused seal is kept only when no detailed check named its kind."""
    kinds = {f.kind for f in found}
    seen: set[tuple[Any, ...]] = set()
    out = [f for f in sealing if f.kind not in kinds]
    for f in found:
        where = tuple(sorted((k, repr(v)) for k, v in f.extra.items()))
        key = (f.kind, f.entity_id, f.version, f.log_index, f.section, f.field, f.rule, where)
        if key in seen:
            continue
        seen.add(key)
        out.append(f)
    return out


def _count(found: list[Finding]) -> dict[str, int]:
    """Findings by kind, for the run's summary."""
    counts: dict[str, int] = defaultdict(int)
    for f in found:
        counts[f.kind] += 1
    return dict(counts)


def _run_doc(row: Any) -> dict[str, Any]:
    """A run as the API shows it, from a row of ``_RUN_COLUMNS``."""
    return {
        "id": row[0],
        "mode": row[1],
        "status": row[2],
        "requested_by": row[3],
        "started_at": row[4],
        "finished_at": row[5],
        "verified_from": row[6],
        "verified_to": row[7],
        "checkpoint_size": row[8],
        "finding_count": row[9],
        "findings": row[10],
        "summary": row[11],
    }


def _run_select(*, findings: bool) -> str:
    """The select list for run documents; a listing leaves out each run's findings (NULL)."""
    return ", ".join(c if findings or c != "findings" else "NULL" for c in _RUN_COLUMNS)


def get_run(principal: Principal, raw_id: str) -> dict[str, Any]:
    """One audit run, findings included."""
    principal.require("auditor")
    run_id = path_params.uuid(raw_id)
    with database().transaction(principal.tenant) as conn:
        row = conn.execute(
            text(
                f"SELECT {_run_select(findings=True)} FROM audit_runs WHERE id = CAST(:id AS uuid)"
            ),
            {"id": run_id},
        ).first()
    if row is None:
        raise NotFound(f"no audit run {run_id}")
    return _run_doc(row)


def list_runs(principal: Principal, query: dict[str, str]) -> dict[str, Any]:
    """The newest runs, without their findings (a page of runs stays small)."""
    principal.require("auditor")
    limit = query_params.integer(
        query, "limit", minimum=1, maximum=params.MAX_RUNS_PAGE, default=params.RUNS_PAGE
    )
    with database().transaction(principal.tenant) as conn:
        rows = conn.execute(
            text(
                f"SELECT {_run_select(findings=False)} "
                "FROM audit_runs ORDER BY started_at DESC LIMIT :limit"
            ),
            {"limit": limit},
        ).all()
    return {"runs": [_run_doc(r) for r in rows]}
