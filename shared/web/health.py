"""``GET /<function>/healthz``: liveness for anyone, and, with ``?details=1``, the state an
auditor or an admin needs to judge a deployment (for the caller's tenant).

Plain ``healthz`` stays what load balancers poll: no token, one ``SELECT 1``. The details
need a token with the auditor or admin role (401 without one, 403 for any other role) and
cost one more read-only transaction of four indexed single-row reads.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import text

from shared.errors import InvalidQuery
from shared.integrity import canonical
from shared.security.principal import Principal
from shared.storage.engine import database
from shared.tlog import keys, witnesses
from shared.web.router import Call

QUERY = ("details",)  # the query parameters healthz takes


def healthz(call: Call) -> dict[str, Any]:
    """``{"status": "ok"}``, or the details when ``details=1`` asks for them."""
    details = call.query.get("details")
    if details not in (None, "0", "1"):
        raise InvalidQuery([{"field": "details", "message": "must be 0 or 1"}])
    if details == "1":
        return report(call.principal)
    database().ping()
    return {"status": "ok"}


def report(principal: Principal) -> dict[str, Any]:
    """Database reachability and round-trip time (one ``SELECT 1`` from this instance,
    connection checkout included), the migration revision, the signing key in use, and the
    tenant's latest checkpoint (size, age, entries logged since), its witnesses' cosignatures
    (the largest size each cosigned, the last refusal or time-out) and latest audit run."""
    principal.require("auditor")
    started = time.perf_counter()
    database().ping()  # unreachable: 503, as plain healthz
    round_trip = time.perf_counter() - started
    with database().transaction(principal.tenant, snapshot=True) as conn:
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        now = conn.execute(text("SELECT now()")).scalar_one()
        log_size = conn.execute(text("SELECT size FROM log_heads")).scalar() or 0
        checkpoint = conn.execute(
            text("SELECT size, created_at FROM checkpoints ORDER BY size DESC LIMIT 1")
        ).first()
        run = conn.execute(
            text(
                "SELECT CAST(id AS text), mode, status, started_at, finished_at, finding_count "
                "FROM audit_runs ORDER BY started_at DESC LIMIT 1"
            )
        ).first()
    key = keys.status()
    return {
        "status": "ok",
        "database": {"reachable": True, "round_trip_ms": round(round_trip * 1000, 3)},
        "migration_revision": revision,
        "keys": {"active_key_id": key["active_key_id"], "reload_error": key["reload_error"]},
        "tenant": principal.tenant,
        "witnesses": witnesses.health(principal.tenant),
        "log_size": int(log_size),
        "checkpoint": None
        if checkpoint is None
        else {
            "size": int(checkpoint[0]),
            "created_at": canonical.time_text(checkpoint[1]),
            "age_seconds": round((now - checkpoint[1]).total_seconds(), 3),
            "unsealed_entries": int(log_size) - int(checkpoint[0]),
        },
        "audit": None
        if run is None
        else {
            "id": run[0],
            "mode": run[1],
            "status": run[2],
            "started_at": canonical.time_text(run[3]),
            "finished_at": canonical.time_text(run[4]) if run[4] else None,
            "finding_count": run[5],
        },
    }
