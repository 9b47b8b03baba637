"""How shared/web/router.py writes responses and request log lines: headers a handler sets replace
the base ones (never a second copy), bodies are UTF-8 JSON, and log lines stay one line of
ASCII JSON whatever text the request carries."""

from __future__ import annotations

import json
import logging
import sys

import functions_framework
import pytest

from shared import logs
from shared.config import ROOT


@pytest.fixture
def log_client(database_url: str):
    return functions_framework.create_app(target="log", source=str(ROOT / "main.py")).test_client()


def test_a_handlers_cache_control_replaces_the_base_one(log_client, bearer, tenant):
    response = log_client.get("/log/keys", headers=bearer(tenant, "reader"))
    assert response.status_code == 200
    assert response.headers.getlist("Cache-Control") == ["private, max-age=10"]
    assert response.headers.getlist("X-Content-Type-Options") == ["nosniff"]


def test_created_document_is_utf8_json_with_its_headers(registry_client, author):
    name = "Ünïcødé ☃ skill"
    response = registry_client.post(
        "/registry/skills",
        json={"name": name, "description": "d", "category": "technical"},
        headers=author,
    )
    assert response.status_code == 201
    assert response.mimetype == "application/json"
    assert name.encode() in response.get_data()
    body = json.loads(response.get_data())
    assert body["identity"]["name"] == name
    assert response.headers["ETag"] == '"v1"'
    assert response.headers["Location"] == f"/registry/skills/{body['identity']['id']}"
    assert response.headers.getlist("Cache-Control") == ["no-store"]


def test_problem_body_and_type(registry_client, author):
    response = registry_client.post(
        "/registry/skills", data="{", headers=author, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.json["status"] == 400
    assert response.headers.getlist("Cache-Control") == ["no-store"]


@pytest.mark.parametrize("text", ["plain", "Ünïcødé ☃", "lone \udc80 surrogate", "new\nline"])
def test_a_log_line_is_one_line_of_ascii_json(text):
    entry = {"severity": "INFO", "message": f"GET /{text}", "httpRequest": {"requestUrl": text}}
    line = logs.encode(entry)
    assert line.isascii() and "\n" not in line
    assert json.loads(line) == entry


class _BrokenStdout:
    def write(self, _text: str) -> int:
        raise BrokenPipeError("stdout is gone")

    def flush(self) -> None:
        raise BrokenPipeError("stdout is gone")


def test_a_log_line_that_cannot_be_written_does_not_fail_the_request(
    registry_client, author, monkeypatch
):
    monkeypatch.setattr(sys, "stdout", _BrokenStdout())
    response = registry_client.post(
        "/registry/skills",
        json={"name": "unlogged", "description": "d", "category": "technical"},
        headers=author,
    )
    assert response.status_code == 201


def test_the_request_line_follows_the_log_level(registry_client, reader, capsys):
    logger = logs.configure()
    level = logger.level
    try:
        logger.setLevel(logging.WARNING)  # PLANT_LOG_LEVEL=WARNING
        registry_client.get("/registry/skills", headers=reader)
        assert "httpRequest" not in capsys.readouterr().out
        logger.setLevel(logging.INFO)
        registry_client.get("/registry/skills", headers=reader)
        assert "httpRequest" in capsys.readouterr().out
    finally:
        logger.setLevel(level)
