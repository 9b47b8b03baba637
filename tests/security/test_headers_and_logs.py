"""Every response is marked for browsers and caches; request logs are structured and carry
no token, key or secret."""

from __future__ import annotations

import json

import pytest

from tests.support.reliability_table import record


@pytest.fixture
def client(database_url):
    import functions_framework

    from shared.config import ROOT

    return functions_framework.create_app(
        target="registry", source=str(ROOT / "main.py")
    ).test_client()


def test_headers_on_success_and_on_errors(client, make_token, tenant, request):
    record(
        request.node,
        "missing security headers (success and error)",
        2,
        "nosniff, no-store and Server-Timing on both",
    )
    ok = client.get("/registry/skills", headers={"Authorization": f"Bearer {make_token(tenant)}"})
    denied = client.get("/registry/skills")
    for response in (ok, denied):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
        timing = response.headers["Server-Timing"]
        assert "total;dur=" in timing and "db;dur=" in timing


def test_request_log_is_one_json_line_without_secrets(
    client, make_token, tenant, capsys, monkeypatch, request
):
    record(
        request.node,
        "secrets in request logs",
        1,
        "one JSON line; no token, signature or signing seed",
    )
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "proj")
    token = make_token(tenant, "author")
    client.post(
        "/registry/skills",
        json={"name": "logged", "description": "d", "category": "technical"},
        headers={"Authorization": f"Bearer {token}", "X-Cloud-Trace-Context": "abc123/1;o=1"},
    )
    lines = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    request_lines = [line for line in lines if "httpRequest" in line]
    assert len(request_lines) == 1
    entry = request_lines[0]
    assert entry["severity"] == "INFO"
    assert entry["httpRequest"]["status"] == 201
    assert entry["httpRequest"]["requestMethod"] == "POST"
    assert entry["logging.googleapis.com/trace"] == "projects/proj/traces/abc123"
    dumped = json.dumps(lines)
    assert token not in dumped and token.split(".")[2] not in dumped
    from shared.config import settings
    from shared.tlog import keys

    for entry_key in json.loads(keys.key_file(settings()).read_text())["keys"]:
        assert entry_key["seed"] not in dumped
