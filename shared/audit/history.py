"""Audit history as evidence: each completed run's report appended to the tenant's log (an
entry of type 'audit', kind ``KIND``, the run's id as its entity id, version 1; bytes in
docs/formats.md). An incremental audit resumes from the newest report the signed tree proves,
not from ``audit_runs``; each report in range is compared with its ``audit_runs`` row, so a
run deleted or rewritten there is a finding."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared import tlog
from shared.audit.state import AuditState
from shared.errors import IntegrityViolation
from shared.integrity import canonical, digests, merkle
from shared.registry import documents
from shared.rules.kinds import AUDIT_RUN
from shared.storage import ledger, tree
from shared.tlog import keys, receipts

KIND = AUDIT_RUN
REPORT_TYPE = "plant.audit-run/v1"
# What a report states of its run, as the audit_runs row holds it too
_STATED = ("mode", "status", "verified_from", "verified_to", "checkpoint_size", "finding_count")


def findings_digest(findings: list[dict[str, Any]]) -> str:
    """``sha256:<hex>`` of the findings' RFC 8785 bytes: what the report commits to."""
    return digests.label(digests.sha256(canonical.dumps(findings)))


def report(tenant: str, run_id: str, mode: str, by: str, result: dict[str, Any]) -> dict[str, Any]:
    """A completed run's report document (its RFC 8785 bytes are the log entry)."""
    return {
        "type": REPORT_TYPE,
        "audit_run": {
            "tenant": tenant,
            "id": run_id,
            "mode": mode,
            "status": "completed",
            "requested_by": by,
            "verified_from": result["verified_from"],
            "verified_to": result["verified_to"],
            "checkpoint_size": result["checkpoint_size"],
            "checkpoint_root": result["summary"]["checkpoint"]["root"],
            "finding_count": len(result["findings"]),
            "findings_digest": findings_digest(result["findings"]),
        },
    }


def append(conn: Connection, tenant: str, doc: dict[str, Any]) -> int:
    """Append a report to the log (in the run's closing transaction), with its signed write
    receipt as every entry has (``tlog.receipts``); returns its index."""
    run = doc["audit_run"]
    appended = ledger.append(
        conn,
        entry_type="audit",
        kind=KIND,
        entity_id=run["id"],
        version=1,
        encoded=documents.encode(doc),
        prev_digest=None,
        actor=run["requested_by"],
    )
    receipts.record(conn, tenant, appended.index, [appended.leaf_hash])
    return appended.index


def resume(conn: Connection, tenant: str, mode: str) -> int:
    """The first index an audit must verify: 0 for a full one; else the ``verified_to`` of
    the newest report in the log, once its bytes are proved included in the latest signed
    checkpoint, and only if that run found nothing (so a finding is named by every audit
    until the ledger is repaired). Anything else: 0, a full audit."""
    if mode == "full":
        return 0
    row = conn.execute(
        text(
            "SELECT idx, body FROM log_entries WHERE tenant_id = current_setting('plant.tenant') "
            "AND entry_type = 'audit' ORDER BY idx DESC LIMIT 1"
        )
    ).first()
    last = tree.latest_checkpoint(conn)
    if row is None or last is None or int(row[0]) >= last.size:
        return 0
    index, body = int(row[0]), bytes(row[1])
    try:
        signed = tlog.verify_note(last.note, keys.keyring(), tenant)
        proof = merkle.inclusion_proof(tree.DbNodes(conn), index, last.size)
        run = canonical.loads(body)["audit_run"]
        start, found = int(run["verified_to"]), int(run["finding_count"])
    except (IntegrityViolation, merkle.MissingNode, ValueError, KeyError, TypeError):
        return 0
    proved = signed.size == last.size and merkle.verify_inclusion(
        merkle.leaf_hash(body), index, last.size, proof, signed.root
    )
    if not proved or run.get("tenant") != tenant or found or not 0 <= start <= last.size:
        return 0
    return start


def checked(state: AuditState, start: int, end: int) -> list[int]:
    """Each report in [start, end) against its ``audit_runs`` row: the row must be there and
    say what the report says (its findings by digest). Returns the checkpoint sizes the
    reports name (each must still be stored: ``checkpoints.present``)."""
    rows = state.conn.execute(
        text(
            "SELECT e.idx, e.body, r.id IS NOT NULL, r.mode, r.status, r.verified_from, "
            "r.verified_to, r.checkpoint_size, r.finding_count, r.findings FROM log_entries e "
            "LEFT JOIN audit_runs r ON r.tenant_id = e.tenant_id AND r.id = e.entity_id "
            "WHERE e.tenant_id = current_setting('plant.tenant') AND e.entry_type = 'audit' "
            "AND e.idx >= :start AND e.idx < :end ORDER BY e.idx"
        ),
        {"start": start, "end": end},
    ).all()
    state.rows_read += len(rows)
    sizes: list[int] = []
    for index, body, present, *stored in rows:
        if int(index) in state.reported:
            continue
        try:
            run = canonical.loads(bytes(body))["audit_run"]
            run_id = str(run["id"])
            sizes.append(int(run["checkpoint_size"]))
        except (ValueError, KeyError, TypeError):
            continue  # bytes the tree does not vouch for: named by the entries pass
        where = dict(section="audit_runs", entity_type=KIND, entity_id=run_id, version=1)
        if not present:
            state.add("missing", f"audit run {run_id}, logged at {index}, is not stored", **where)
            continue
        said = {name: value for name, value in zip(_STATED, stored[:-1], strict=True)}
        said["findings_digest"] = findings_digest(stored[-1] if stored[-1] is not None else [])
        for name, value in said.items():
            if value != run.get(name):
                state.add(
                    "altered",
                    f"audit run {run_id} says {name} {value}, its report at {index} says "
                    f"{run.get(name)}",
                    field=name,
                    extra={"report_index": int(index)},
                    **where,
                )
    return sizes
