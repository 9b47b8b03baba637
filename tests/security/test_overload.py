"""A slow statement and an exhausted pool give 503 with Retry-After, never a hang or a 500."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from shared.errors import ServiceUnavailable
from shared.storage.engine import Database, local_engine
from tests.support.reliability_table import record


def test_statement_timeout_is_503(database_url, tenant, request):
    record(request.node, "statement timeout (57014)", 1, "503 within 3 s, no hang")
    db = Database(local_engine(database_url, 1, statement_timeout_ms=100))
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable), db.transaction(tenant) as conn:
        conn.execute(text("SELECT pg_sleep(5)"))
    assert time.monotonic() - started < 3
    db.engine.dispose()


def test_pool_exhaustion_is_503_not_a_hang(database_url, tenant, monkeypatch, request):
    record(request.node, "connection pool exhausted", 2, "503 + Retry-After within 2 s, no hang")
    db = Database(local_engine(database_url, 1, 5000, pool_timeout=0.2))
    with db.transaction(tenant):
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable) as caught, db.transaction(tenant):
            pass
        assert time.monotonic() - started < 2
    assert "capacity" in caught.value.detail
    # Through HTTP: the problem carries Retry-After.
    import functions_framework

    from shared.config import ROOT
    from shared.storage import engine

    monkeypatch.setattr(engine, "_database", db)
    client = functions_framework.create_app(
        target="registry", source=str(ROOT / "main.py")
    ).test_client()
    with db.transaction(tenant):
        response = client.get("/registry/healthz")
    assert response.status_code == 503 and response.headers["Retry-After"]
    db.engine.dispose()
