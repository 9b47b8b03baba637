"""Operators' commands: plant export, plant audit, plant rules, plant keys."""

from __future__ import annotations

import csv
import io
import json
import os
import pwd

import pytest

from shared import cli
from shared.tlog import keys

NAMELESS_UID = 61_234  # a user id the password database has no entry for


def test_plant_export_bundle_then_verify(seeded, tmp_path, capsys):
    out = tmp_path / "bundle.json"
    assert (
        cli.main(["export", "bundle", "--tenant", seeded.tenant, "--out", str(out), "--progress"])
        == 0
    )
    assert "bundling [" in capsys.readouterr().err
    key = keys.keyring().active.vkey
    assert cli.main(["verify", str(out), "--progress", "--key", key]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1].startswith("VERIFIED: ")
    assert "verifying [" in captured.err


def test_plant_export_report_csv(seeded, tmp_path):
    out = tmp_path / "report.csv"
    assert (
        cli.main(
            ["export", "report", "--tenant", seeded.tenant, "--format", "csv", "--out", str(out)]
        )
        == 0
    )
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 5


def test_plant_audit_prints_the_run_and_exits_zero_when_clean(seeded, capsys):
    assert cli.main(["audit", "--tenant", seeded.tenant, "--mode", "full", "--progress"]) == 0
    captured = capsys.readouterr()
    run = json.loads(captured.out)
    assert "auditing [" in captured.err
    assert run["status"] == "completed" and run["finding_count"] == 0


def test_plant_audit_needs_as_when_the_os_user_has_no_name(seeded, superuser, monkeypatch, capsys):
    """No login variable and a uid without a passwd entry: nobody to record, so --as is
    required; nothing is run. (The uid is made up; the password database lookup is real.)"""
    with pytest.raises(KeyError):
        pwd.getpwuid(NAMELESS_UID)
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "getuid", lambda: NAMELESS_UID)
    runs = _audit_runs(superuser, seeded.tenant)
    assert cli.main(["audit", "--tenant", seeded.tenant]) == 2
    assert "--as NAME" in capsys.readouterr().err
    assert cli.main(["audit", "--tenant", seeded.tenant, "--as", " "]) == 2
    assert "--as needs a name" in capsys.readouterr().err
    assert _audit_runs(superuser, seeded.tenant) == runs
    assert cli.main(["audit", "--tenant", seeded.tenant, "--as", "dave"]) == 0
    assert json.loads(capsys.readouterr().out)["requested_by"] == "operator:dave"


def _audit_runs(superuser, tenant: str) -> int:
    from sqlalchemy import text

    with superuser.connect() as conn:
        query = text("SELECT count(*) FROM audit_runs WHERE tenant_id = :t")
        return int(conn.execute(query, {"t": tenant}).scalar_one())


def test_plant_rules_prints_the_catalogue(capsys):
    assert cli.main(["rules"]) == 0
    out = capsys.readouterr().out
    for rule in ("L0-01", "L0-05", "L1-AGENT-03", "INTEGRITY-01"):
        assert rule in out
    assert "remediation:" in out


def test_plant_verify_on_unreadable_file_exits_1(tmp_path, capsys):
    assert cli.main(["verify", str(tmp_path / "absent.json"), "--key", "k"]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert cli.main(["verify", str(tmp_path), "--key-file", str(tmp_path / "absent")]) == 1
    assert "cannot read the key file" in capsys.readouterr().err
