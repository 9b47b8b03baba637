"""The seal's witness client against witnesses that misbehave (issue 25, item 3): one that
accepts the connection and never answers, and ones that answer 200 with garbage or with a
line by another key. The seal stands each time, nothing unverified is stored, and health
details name the witness and why."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shared import config
from shared.integrity import cosignature
from shared.storage import cosignatures, tree
from shared.storage.engine import database


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def silent() -> Iterator[int]:
    """A port that accepts connections and never says a byte."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def _answering(body: bytes) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def test_misbehaving_witnesses_never_fail_a_seal_or_get_stored(
    log_client, tenant, fill, make_token, silent, monkeypatch
):
    keys = {n: cosignature.WitnessSigner.from_seed(n, os.urandom(32)) for n in ("a", "b", "c")}
    impostor = cosignature.WitnessSigner.from_seed("b", os.urandom(32))  # b's name, not b's key
    line = impostor.cosign("x\n1\n" + "A" * 43 + "=\n", 1_700_000_000).line.encode()
    garbage, other_key = _answering(b"not a signature line\n"), _answering(line)
    config_ = [
        {"name": "a", "vkey": keys["a"].vkey, "url": f"http://127.0.0.1:{silent}"},
        {"name": "b", "vkey": keys["b"].vkey, "url": f"http://127.0.0.1:{other_key.server_port}"},
        {"name": "c", "vkey": keys["c"].vkey, "url": f"http://127.0.0.1:{garbage.server_port}"},
    ]
    monkeypatch.setenv("PLANT_WITNESSES", json.dumps({tenant: config_}))
    monkeypatch.setenv("PLANT_WITNESS_TIMEOUT_SECONDS", "1")
    config.settings.cache_clear()
    try:
        fill(tenant, 3)
        auditor = _auth(make_token(tenant, "auditor"))
        assert log_client.post("/log/seal", headers=auditor).status_code == 201
        with database().transaction(tenant) as conn:
            last = tree.latest_checkpoint(conn)
            assert last is not None and cosignatures.lines_at(conn, last.size) == []
        details = log_client.get("/log/healthz?details=1", headers=auditor).json
        errors = {w["name"]: w["last_error"] for w in details["witnesses"]}
        assert "time" in errors["a"], errors  # timed out, or no answer within the bound
        assert errors["b"].startswith("HTTP 200: b: no line by this witness") or (
            "does not verify" in errors["b"]
        ), errors
        assert errors["c"].startswith("HTTP 200:") and "signature line" in errors["c"], errors
        assert all(w["latest_cosigned"] is False for w in details["witnesses"])
    finally:
        garbage.shutdown()
        other_key.shutdown()
        monkeypatch.delenv("PLANT_WITNESSES")
        config.settings.cache_clear()
