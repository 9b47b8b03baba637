"""The real servers: `functions-framework --target=registry` and the combined local app."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _server(command: list[str], port: int, health: str):
    proc = subprocess.Popen(
        command, cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{health}", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass  # not up yet, or its first request still importing on a loaded machine
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(proc.stderr.read().decode()[-2000:] if proc.stderr else "")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _call(url: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Authorization", f"Bearer {token}")
    if data:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_functions_framework_process_serves_the_registry(tenant, make_token):
    port = _free_port()
    command = [
        str(BIN / "functions-framework"),
        "--target=registry",
        "--source=main.py",
        f"--port={port}",
        "--host=127.0.0.1",
    ]
    token = make_token(tenant, "author", "reader")
    with _server(command, port, "/healthz") as base:
        status, created = _call(
            f"{base}/skills", token, {"name": "HTTP", "description": "d", "category": "technical"}
        )
        assert status == 201
        status, read = _call(f"{base}/skills/{created['identity']['id']}", token)
        assert status == 200 and read["identity"]["name"] == "HTTP"
        status, problem = _call(f"{base}/skills", "forged")
        assert status == 401 and problem["status"] == 401


def test_combined_local_server_mounts_every_function(tenant, make_token):
    import main

    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--threads",
        "4",
        "functions.local:app",
    ]
    with _server(command, port, "/registry/healthz") as base:
        for name in main.FUNCTIONS:
            with urllib.request.urlopen(f"{base}/{name}/healthz", timeout=30) as response:
                assert response.status == 200
        status, listing = _call(f"{base}/registry/skills", make_token(tenant, "reader"))
        assert status == 200 and listing["items"] == []
