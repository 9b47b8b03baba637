"""Bodies over raw sockets to real servers: a chunked body reads as a length-delimited one, and
an unreadable one (broken chunking, past the limit, shorter than its Content-Length) is a 4xx,
under `plant serve` and under both WSGI servers the functions run on (gunicorn, as Cloud
Functions runs them; waitress, when it is installed)."""

from __future__ import annotations

import http.client
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from shared.config import ROOT
from shared.web.bodies import MAX_BODY
from tests.support.plant_server import call, free_port
from tests.support.reliability_table import record


@dataclass
class Answer:
    status: int  # 0: the server closed the connection without answering
    content_type: str
    body: Any


@dataclass
class Server:
    name: str
    base: str

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    def exchange(self, head: str, parts: list[bytes], *, half_close: bool = False) -> Answer:
        """Send the request head and body parts on one connection; read the answer, reading
        while sending (so an answer sent before the body ends is never lost to a reset)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            received = bytearray()

            def read() -> None:
                while True:
                    try:
                        chunk = sock.recv(65536)
                    except OSError:
                        return
                    if not chunk:
                        return
                    received.extend(chunk)

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            try:
                sock.sendall(head.encode())
                for part in parts:
                    sock.sendall(part)
                if half_close:
                    sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the server answered and closed before the whole body was sent
            reader.join(30)
        if not received:
            return Answer(0, "", None)
        response = http.client.HTTPResponse(_Replayed(bytes(received)))  # type: ignore[arg-type]
        response.begin()
        raw = response.read()
        content_type = response.getheader("Content-Type") or ""
        body: Any = json.loads(raw) if "json" in content_type and raw else raw
        return Answer(response.status, content_type, body)


class _Replayed:
    def __init__(self, data: bytes) -> None:
        self._file = io.BytesIO(data)

    def makefile(self, *args: Any, **kwargs: Any) -> io.BytesIO:
        return self._file


def _head(method: str, path: str, token: str, framing: str, extra: str = "") -> str:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n{extra}Connection: close\r\n\r\n"
    )


def chunked(data: bytes, size: int = 7) -> list[bytes]:
    """``data`` as chunks of ``size`` bytes, the last with a chunk extension, then the end."""
    parts = [f"{len(data[i : i + size]):x}\r\n".encode() + data[i : i + size] + b"\r\n"
             for i in range(0, len(data), size)]  # fmt: skip
    if parts:
        parts[-1] = parts[-1].replace(b"\r\n", b";ext=1\r\n", 1)
    return [*parts, b"0\r\n\r\n"]


def send(server: Server, method: str, path: str, token: str, body: bytes, framing: str) -> Answer:
    if framing == "chunked":
        return server.exchange(
            _head(method, path, token, "Transfer-Encoding: chunked"), chunked(body)
        )
    return server.exchange(_head(method, path, token, f"Content-Length: {len(body)}"), [body])


def _wsgi_server(command: list[str], port: int, log: Any) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PLANT_ENV": "local", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{command[2]} exited {proc.returncode}")
        if call(f"http://127.0.0.1:{port}", "GET", "/registry/healthz", timeout=2).status == 200:
            return proc
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"{command} did not become healthy")


@pytest.fixture(params=["plant serve", "gunicorn", "waitress"])
def server(request, serve, database_url, tmp_path) -> Iterator[Server]:
    """A real server of every function; `plant serve` on a database of its own, the bare WSGI
    servers on the session's (each test has its own tenant)."""
    if request.param == "plant serve":
        yield Server(request.param, serve().base)
        return
    port = free_port()
    if request.param == "waitress":
        pytest.importorskip("waitress")
        command = [sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}", "--threads=4"]
    else:
        command = [sys.executable, "-m", "gunicorn", f"--bind=127.0.0.1:{port}", "--threads=4"]
    with (tmp_path / f"{request.param}.log").open("wb") as log:
        proc = _wsgi_server([*command, "functions.local:app"], port, log)
    try:
        yield Server(request.param, f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(15)


@pytest.fixture
def token(make_token, tenant) -> Callable[..., str]:
    def make(*roles: str, subject: str = "root") -> str:
        return make_token(tenant, *roles, subject=subject)

    return make


def _create(server: Server, token: str, name: str) -> str:
    reply = call(
        server.base,
        "POST",
        "/registry/skills",
        token,
        {"name": name, "description": "d", "category": "technical"},
    )
    assert reply.status == 201, reply.body
    return reply.body["identity"]["id"]


def test_a_chunked_version_pin_is_read(server, token, request):
    """Issue 20 #3: `{"version": 1}` sent chunked certified v2, an amendment nobody reviewed."""
    skill = _create(server, token("author", subject="ann"), "Pinned")
    amended = call(
        server.base,
        "PATCH",
        f"/registry/skills/{skill}",
        token("author", subject="bob"),
        {"description": "changed", "amendment_reason": "r"},
        {"If-Match": '"v1"'},
    )
    assert amended.status == 200, amended.body
    carol = token("certifier", subject="carol")
    for framing in ("chunked", "length"):
        answer = send(server, "POST", f"/certify/skills/{skill}", carol, b'{"version": 1}', framing)
        assert answer.status == 409, (server.name, framing, answer)
        assert answer.body["current_version"] == 2
    record(
        request.node,
        f"chunked version pin on POST /certify ({server.name})",
        2,
        "409 stale both ways, nothing certified",
    )
    listed = call(server.base, "GET", f"/certify/skills/{skill}/certificates", carol)
    assert listed.body["certificates"] == []


def test_a_chunked_audit_mode_and_create_are_read(server, token, request):
    auditor = token("auditor")
    bogus = send(server, "POST", "/audit/runs", auditor, b'{"mode": "bogus"}', "chunked")
    assert bogus.status == 422 and bogus.body["violations"][0]["field"] == "mode", bogus
    full = send(server, "POST", "/audit/runs", auditor, b'{"mode": "full"}', "chunked")
    assert full.status == 201 and full.body["mode"] == "full", full
    body = json.dumps({"name": "Chunks", "description": "d" * 500, "category": "technical"})
    created = send(server, "POST", "/registry/skills", token("author"), body.encode(), "chunked")
    assert created.status == 201 and created.body["identity"]["name"] == "Chunks", created
    record(
        request.node,
        f"chunked body on every body route ({server.name}, raw socket)",
        3,
        "read identically: mode checked (422 bogus, 201 full), create writes what was sent",
    )


@pytest.mark.parametrize(
    "parts",
    [[b"zz\r\n{}\r\n0\r\n\r\n"], [b"2\r\n{}XX0\r\n\r\n"], [b"-1\r\n{}\r\n0\r\n\r\n"]],
    ids=["size not hex", "no CRLF after the data", "negative size"],
)
def test_broken_chunking_is_a_4xx(server, token, parts, request):
    head = _head("POST", "/audit/runs", token("auditor"), "Transfer-Encoding: chunked")
    answer = server.exchange(head, parts)
    record(
        request.node,
        f"broken chunked framing ({server.name})",
        1,
        f"{answer.status} {answer.content_type or '(no answer)'}, nothing run",
    )
    assert 400 <= answer.status < 500, (server.name, answer)
    runs = call(server.base, "GET", "/audit/runs", token("auditor"))
    assert runs.body["runs"] == []


def test_a_chunked_body_over_the_limit_is_413(server, token, request):
    data = b'{"mode": "' + b"a" * MAX_BODY + b'"}'
    head = _head("POST", "/audit/runs", token("auditor"), "Transfer-Encoding: chunked")
    answer = server.exchange(head, chunked(data, 65536))
    record(
        request.node,
        f"chunked body over the limit ({server.name})",
        1,
        f"{answer.status} {answer.content_type}",
    )
    assert answer.status == 413, (server.name, answer)
    assert answer.content_type == "application/problem+json", (server.name, answer)


def test_a_body_shorter_than_its_content_length_is_never_run(server, token, request):
    """The client declares 100 bytes, sends 7 and stops sending: gunicorn hands the app the 7
    (a 400 here); waitress waits for the rest and never calls the app (no answer)."""
    head = _head("POST", "/audit/runs", token("auditor"), "Content-Length: 100")
    answer = server.exchange(head, [b'{"mode"'], half_close=True)
    record(
        request.node,
        f"declared length larger than what arrives ({server.name})",
        1,
        f"{answer.status or 'closed, no answer'} {answer.content_type}".strip() + ", nothing run",
    )
    assert answer.status in (0, 400), (server.name, answer)
    if answer.status:
        assert answer.content_type == "application/problem+json"
    runs = call(server.base, "GET", "/audit/runs", token("auditor"))
    assert runs.body["runs"] == []
