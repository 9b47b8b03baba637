"""Audit runs: recorded, safe to fire twice at once, incremental in what they read, and
silent on a clean log of 10,000 entries."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from shared import audit, tlog
from shared.audit import runs
from shared.config import ROOT
from tests.support.seeding import seed_skills


@pytest.fixture
def audit_client(database_url: str):
    import functions_framework

    return functions_framework.create_app(
        target="audit", source=str(ROOT / "main.py")
    ).test_client()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _auditor(tenant: str):
    from shared.security.principal import Principal

    return Principal("audrey", tenant, frozenset({"auditor"}))


def test_clean_log_of_10000_entries_has_zero_findings(superuser, tenant, database_url):
    seed_skills(superuser, tenant, 0, 10_000)
    run, started = audit.run(_auditor(tenant), {"mode": "full"})
    assert started and run["status"] == "completed"
    assert run["findings"] == []
    assert run["verified_to"] == 10_001  # and the map commit the audit's seal appended
    assert run["summary"]["entries_verified"] == 10_001


def test_incremental_audit_reads_new_plus_log_n_rows(superuser, tenant, database_url):
    seed_skills(superuser, tenant, 0, 20_000)
    full, _ = audit.run(_auditor(tenant), {"mode": "full"})
    seed_skills(superuser, tenant, 20_002, 1_000)  # after the full run's map commit and report
    incremental, _ = audit.run(_auditor(tenant), {"mode": "incremental"})
    assert incremental["findings"] == []
    # the full run's report is logged at 20,001 (after its seal's map commit at 20,000) and is
    # verified again; the incremental run's seal adds a map commit at 21,002
    assert incremental["verified_from"] == 20_001 and incremental["verified_to"] == 21_003
    assert incremental["summary"]["entries_verified"] == 1_002
    reads = incremental["summary"]["rows_read"]
    # entries, their stored leaves, heads and latest versions, and the map pass's heads of
    # the changed entities: a few rows per new entry, plus O(log n) subtree hashes; and the
    # stored nodes over the new range (about 2 per entry), each checked against its children
    # (issue 22); the full run read the whole log.
    assert reads <= 8 * 1_002 + 4 * (21_003).bit_length(), reads
    assert full["summary"]["rows_read"] >= 20_000 * 3


def test_a_second_audit_while_one_runs_returns_the_running_one(tenant, database_url):
    run_id, started = runs._start(_auditor(tenant), "full")
    assert started
    again, started_again = audit.run(_auditor(tenant), {"mode": "incremental"})
    assert not started_again
    assert again["id"] == run_id and again["status"] == "running"


def test_two_audits_fired_at_once_never_run_concurrently(superuser, tenant, database_url):
    seed_skills(superuser, tenant, 0, 3_000)
    barrier = threading.Barrier(2)
    results = []

    def fire() -> None:
        barrier.wait()
        results.append(audit.run(_auditor(tenant), {"mode": "full"}))

    threads = [threading.Thread(target=fire) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    started = [run for run, began in results if began]
    returned = [run for run, began in results if not began]
    assert len(started) >= 1
    for run in returned:
        assert run["id"] == started[0]["id"]
    with superuser.connect() as conn:
        running = conn.execute(
            text("SELECT count(*) FROM audit_runs WHERE tenant_id = :t AND status = 'running'"),
            {"t": tenant},
        ).scalar_one()
    assert running == 0


def test_audit_api_records_and_serves_runs(audit_client, tenant, make_token, superuser):
    seed_skills(superuser, tenant, 0, 5)
    auditor = _auth(make_token(tenant, "auditor"))
    started = audit_client.post("/audit/runs", json={"mode": "full"}, headers=auditor)
    assert started.status_code == 201
    run_id = started.json["id"]
    assert started.headers["Location"] == f"/audit/runs/{run_id}"
    listed = audit_client.get("/audit/runs", headers=auditor).json["runs"]
    assert run_id in [r["id"] for r in listed]
    one = audit_client.get(f"/audit/runs/{run_id}", headers=auditor).json
    assert one["status"] == "completed" and one["findings"] == []
    with superuser.connect() as conn:
        entity = conn.execute(
            text("SELECT CAST(entity_id AS text) FROM entity_heads WHERE tenant_id = :t LIMIT 1"),
            {"t": tenant},
        ).scalar_one()
    report = audit_client.get(f"/audit/entities/skills/{entity}", headers=auditor).json
    assert report["findings"] == [] and report["entries"] == 1


def test_audit_api_refuses_wrong_role_bad_mode_and_other_tenants(audit_client, tenant, make_token):
    author = _auth(make_token(tenant, "author"))
    assert audit_client.post("/audit/runs", headers=author).status_code == 403
    auditor = _auth(make_token(tenant, "auditor"))
    bad = audit_client.post("/audit/runs", json={"mode": "sometimes"}, headers=auditor)
    assert bad.status_code == 422 and bad.json["violations"][0]["field"] == "mode"
    run_id = audit_client.post("/audit/runs", headers=auditor).json["id"]
    other = _auth(make_token(tenant + "-b", "auditor"))
    assert audit_client.get(f"/audit/runs/{run_id}", headers=other).status_code == 404
    assert tlog.origin(tenant).endswith(tenant)
