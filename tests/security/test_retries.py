"""Deadlocks and serialization failures are retried: the client sees one clean answer and
exactly one version is written."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from shared.errors import ServiceUnavailable
from shared.registry import writes
from shared.security.principal import Principal
from shared.storage import ledger
from tests.support.reliability_table import record


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
def test_a_transient_abort_is_retried_once_and_writes_once(
    tenant, superuser, monkeypatch, sqlstate, request
):
    cause = {"40P01": "deadlock", "40001": "serialization failure"}[sqlstate]
    record(
        request.node,
        f"PostgreSQL {sqlstate} ({cause}) during a write",
        1,
        "retried: one clean answer, exactly one version written",
    )
    real_append = ledger.append_version
    raised = []

    def flaky(conn, new):
        if not raised:
            raised.append(sqlstate)
            # A real error from PostgreSQL with that SQLSTATE, aborting the transaction.
            conn.execute(
                text(f"DO $$ BEGIN RAISE EXCEPTION 'forced' USING ERRCODE = '{sqlstate}'; END $$")
            )
        return real_append(conn, new)

    monkeypatch.setattr(ledger, "append_version", flaky)
    author = Principal("alice", tenant, frozenset({"author"}))
    doc = writes.create(author, "industries", {"name": "retry", "description": "d"}, "r")
    assert raised == [sqlstate]
    assert doc.body["versioning"]["version"] == 1
    with superuser.connect() as conn:
        rows = conn.execute(
            text("SELECT idx FROM log_entries WHERE tenant_id = :t"), {"t": tenant}
        ).all()
    assert [r[0] for r in rows] == [0]


def test_retries_are_bounded(tenant, monkeypatch, request):
    record(
        request.node,
        "PostgreSQL 40P01 on every attempt",
        4,
        "503 (service unavailable) after 4 bounded attempts, never a 500",
    )
    calls = []

    def always(conn, new):
        calls.append(1)
        conn.execute(text("DO $$ BEGIN RAISE EXCEPTION 'forced' USING ERRCODE = '40P01'; END $$"))

    monkeypatch.setattr(ledger, "append_version", always)
    author = Principal("alice", tenant, frozenset({"author"}))
    with pytest.raises(ServiceUnavailable):  # 503 + Retry-After, never a 500
        writes.create(author, "industries", {"name": "never", "description": "d"}, "r")
    assert len(calls) == 4
