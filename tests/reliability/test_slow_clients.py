"""Slow clients against a real `plant serve` (issue 20, attack 2: Must exist 2).

Real sockets on loopback, a real server on the embedded PostgreSQL: 64 connections that stop
inside their request line or headers, 64 that stop one byte into a body announced as 100,000
bytes, and 64 that ask for an evidence bundle larger than the kernel's socket buffers hold and
never read a byte, all held at once. Meanwhile `GET /registry/healthz` and `POST
/registry/skills` must each answer within a second (the issue's own bound). The server runs
with the thread and pool sizes Terraform gives every function (terraform/functions.tf).

Then the deadlines: with short ones, a stalled head, a head trickled a byte at a time, a stalled
body and a reader that never reads are each closed by the server, and past the connection
limit the idlest connection makes room, so healthz still answers within the bound.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.support.plant_server import ROOT, PlantServer, call, free_port
from tests.support.reliability_table import record
from tests.support.seeding import seed_skills
from tests.support.terraform_doc import server_settings

STALLED = 64  # connections of each kind, held together
BOUND = 1.0  # seconds: the bound for healthz and a create while they are held
PROBES = 5  # healthz and create pairs per phase
# Long enough that no deadline closes a stalled connection while the first test holds it.
HOLD_ENV = {"PLANT_SERVE_REQUEST_TIMEOUT": "120", "PLANT_SERVE_IDLE_TIMEOUT": "120"}
EXPORT_SLOTS = 2  # PLANT_EXPORT_CONCURRENCY's default: exports beyond it are 503 at once
BUNDLE_ENTITIES = 700  # skills of 5,000-character descriptions: a bundle of ~6 MB
SKILL = {"description": "probe", "category": "technical"}


def _connect(port: int, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    return sock


def _peek(sock: socket.socket) -> bytes | None:
    """The first byte waiting in this socket's buffer, left there (b"" once the server has
    closed it, None while nothing has come)."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return None
    finally:
        sock.settimeout(5)


def _is_open(sock: socket.socket) -> bool:
    """The server has neither closed this connection nor answered on it."""
    try:
        return _peek(sock) is None
    except OSError:  # reset
        return False


def _status(sock: socket.socket) -> tuple[int, bool]:
    """The status of the response waiting in this socket's buffer and whether it says when to
    retry (nothing is read: a never-reading client stays one)."""
    sock.settimeout(5)
    head = sock.recv(4096, socket.MSG_PEEK).split(b"\r\n\r\n", 1)[0].lower()
    return int(head.split(b" ", 2)[1]), b"\r\nretry-after: " in head


def _has_bytes(sock: socket.socket) -> bool:
    """Something of the response is waiting in this socket's buffer (nothing is read)."""
    try:
        return bool(_peek(sock))
    except OSError:
        return False


def _head_stall(port: int, i: int) -> socket.socket:
    """Half stop inside the request line, half inside the headers."""
    sock = _connect(port)
    if i % 2:
        sock.sendall(b"GET /registry/heal")
    else:
        sock.sendall(b"POST /registry/skills HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
    return sock


def _body_stall(port: int, token: str) -> socket.socket:
    sock = _connect(port)
    sock.sendall(
        b"POST /registry/skills HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
    )
    return sock


def _export_stall(port: int, token: str) -> socket.socket:
    """Asks for the bundle and never reads (with a small receive buffer, as a phone might)."""
    sock = _connect(port, rcvbuf=4096)
    sock.sendall(
        b"GET /export/bundle HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\n\r\n"
    )
    return sock


def _bundle_size(server: PlantServer, token: str) -> int:
    request = urllib.request.Request(
        server.base + "/export/bundle", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return len(response.read())


def _kernel_buffers() -> int:
    """The most a never-reading client's connection can hold in the kernel: the server's
    largest send buffer and the client's receive buffer."""
    wmem = Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()
    return int(wmem[2]) + 64 * 1024


@dataclass
class Probes:
    """healthz and a create, timed; every answer within the bound or the test fails."""

    server: PlantServer
    author: str

    def run(self, holding: str) -> dict[str, float]:
        worst = {"healthz": 0.0, "create": 0.0}
        for _ in range(PROBES):
            health = call(self.server.base, "GET", "/registry/healthz", timeout=5)
            assert health.status == 200 and health.seconds < BOUND, (
                f"GET /registry/healthz took {health.seconds:.2f} s (status {health.status}) "
                f"while {holding} were held: the issue's bound is {BOUND} s"
            )
            body = {**SKILL, "name": f"probe {uuid.uuid4().hex[:12]}"}
            create = call(
                self.server.base, "POST", "/registry/skills", self.author, body, timeout=5
            )
            assert create.status == 201 and create.seconds < BOUND, (
                f"POST /registry/skills took {create.seconds:.2f} s (status {create.status}) "
                f"while {holding} were held: the issue's bound is {BOUND} s"
            )
            worst["healthz"] = max(worst["healthz"], health.seconds)
            worst["create"] = max(worst["create"], create.seconds)
            time.sleep(0.05)
        return worst


def _cpu_seconds(server: PlantServer) -> float:
    total = 0.0
    for proc in server.processes():
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def _wait_until_idle(server: PlantServer, limit: float = 90) -> float:
    """Seconds until the server uses (almost) no CPU: the exports are written as far as the
    server will write them."""
    started = time.monotonic()
    before = _cpu_seconds(server)
    while time.monotonic() - started < limit:
        time.sleep(0.5)
        now = _cpu_seconds(server)
        if now - before < 0.02:
            return time.monotonic() - started
        before = now
    raise AssertionError(f"the server was still busy after {limit} s")


@contextlib.contextmanager
def _held() -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    try:
        yield socks
    finally:
        for sock in socks:
            sock.close()


def _outcome(worst: dict[str, float]) -> str:
    return f"healthz max {worst['healthz']:.3f} s, create max {worst['create']:.3f} s"


def test_stalled_connections_of_every_kind_leave_healthz_and_creates_within_a_second(
    serve, owner_engine, tenant, make_token, request
):
    settings = server_settings()
    assert settings["THREADS"] == "8", settings  # what the rest of this test was sized for
    server = serve(**settings, **HOLD_ENV, PLANT_EXPORT_CONCURRENCY=str(EXPORT_SLOTS))
    seed_skills(owner_engine(server.database_url), tenant, 0, BUNDLE_ENTITIES, "d" * 5000)
    author = make_token(tenant, "author", "reader", subject="alice")
    auditor = make_token(tenant, "auditor", "reader", subject="audrey")
    size = _bundle_size(server, auditor)
    assert size > _kernel_buffers(), (size, _kernel_buffers())
    probes = Probes(server, author)
    with _held() as heads, _held() as bodies, _held() as exports:
        heads.extend(_head_stall(server.port, i) for i in range(STALLED))
        time.sleep(0.5)
        worst = probes.run(f"{STALLED} partial request lines and headers")
        record(request.node, f"slow clients: {STALLED} partial request heads", STALLED,
               _outcome(worst))  # fmt: skip

        bodies.extend(_body_stall(server.port, author) for _ in range(STALLED))
        time.sleep(0.5)
        worst = probes.run(f"{STALLED} heads and {STALLED} partial bodies")
        record(request.node, f"slow clients: {STALLED} partial bodies (Content-Length: "
               "100000, 1 byte sent)", STALLED, _outcome(worst))  # fmt: skip

        exports.extend(_export_stall(server.port, auditor) for _ in range(STALLED))
        # Not bounded here: while bundles render, healthz waits for a thread; the export cap
        # bounds how many render at once.
        rendering = call(server.base, "GET", "/registry/healthz", timeout=60)
        settled = _wait_until_idle(server)
        worst = probes.run(f"{STALLED} heads, {STALLED} bodies and {STALLED} unread exports")
        assert all(_has_bytes(s) for s in exports), "every export was answered"
        # An export holds its slot until its bundle is queued whole for the client (this one
        # fits the output buffer): at least the cap's worth were sent, the rest refused.
        statuses = [_status(s) for s in exports]
        sent = statuses.count((200, False))
        assert sent >= EXPORT_SLOTS and sent + statuses.count((503, True)) == STALLED, statuses
        open_heads = sum(_is_open(s) for s in heads)
        open_bodies = sum(_is_open(s) for s in bodies)
        assert (open_heads, open_bodies) == (STALLED, STALLED), "the stalled clients were held"
        record(request.node, f"slow clients: {STALLED} export clients that never read "
               f"(bundle of {size:,} bytes)", STALLED,
               f"{_outcome(worst)}; {sent} bundles sent, {STALLED - sent} exports 503 (cap "
               f"{EXPORT_SLOTS}); all {3 * STALLED} stalled connections still open; "
               f"server idle {settled:.1f} s after the requests (healthz while they rendered: "
               f"{rendering.seconds:.2f} s)")  # fmt: skip


# Short deadlines, and a connection limit a test can pass.
DEADLINE = 3  # seconds, for a request's head and body and for a connection moving no byte
LIMIT = 100
DEADLINE_ENV = {
    "PLANT_SERVE_REQUEST_TIMEOUT": str(DEADLINE),
    "PLANT_SERVE_IDLE_TIMEOUT": str(DEADLINE),
    "PLANT_SERVE_CONNECTIONS": str(LIMIT),
}
LARGE_BUNDLE_ENTITIES = 2600  # ~22 MB: past waitress's 16 MiB output watermark and the kernel's


def _drain(sock: socket.socket) -> tuple[bool, int]:
    """Read what the server left in the connection: (it ended with the server closing, bytes)."""
    received = 0
    sock.settimeout(5)
    for _ in range(100_000):  # bounded: at most 6 GB in 64 KiB reads
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return False, received
        except OSError:  # reset
            return True, received
        if not chunk:
            return True, received
        received += len(chunk)
    return False, received


def test_deadlines_close_stalled_clients_and_the_limit_makes_room(
    serve, owner_engine, tenant, make_token, request
):
    threads = int(server_settings()["THREADS"])
    # A slot for each thread, so that never-reading readers can hold every thread (past the
    # cap an export is a 503, which holds none).
    server = serve(**server_settings(), **DEADLINE_ENV, PLANT_EXPORT_CONCURRENCY=str(threads))
    author = make_token(tenant, "author", "reader", subject="alice")
    probes = Probes(server, author)
    with _held() as heads:
        # Past the limit: the idlest connections make room for new ones.
        heads.extend(_head_stall(server.port, i) for i in range(LIMIT + LIMIT // 2))
        worst = probes.run(f"{len(heads)} partial heads (limit {LIMIT} connections)")
        evicted = sum(not _is_open(s) for s in heads)
        assert evicted >= LIMIT // 2, f"only {evicted} stalled connections were closed"
        record(request.node, f"slow clients: {len(heads)} partial heads past a limit of {LIMIT} "
               "connections", len(heads), f"{_outcome(worst)}; the {evicted} idlest closed to "
               "make room")  # fmt: skip

    opened = time.monotonic()
    slow = {
        "partial request head": _head_stall(server.port, 0),
        "partial body": _body_stall(server.port, author),
        "head trickled a byte every 0.5 s": _connect(server.port),
    }
    closed: dict[str, float] = {}
    trickled = iter(b"GET /registry/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" * 2)
    while len(closed) < len(slow) and time.monotonic() - opened < DEADLINE + 5:  # bounded
        with contextlib.suppress(OSError, StopIteration):
            slow["head trickled a byte every 0.5 s"].sendall(bytes([next(trickled)]))
        time.sleep(0.5)
        for name, sock in slow.items():
            if name not in closed and not _is_open(sock):
                closed[name] = time.monotonic() - opened
    for sock in slow.values():
        sock.close()
    assert set(closed) == set(slow), f"open after {DEADLINE + 5} s ({DEADLINE} s deadline): " + (
        ", ".join(set(slow) - set(closed))
    )
    record(request.node, "slow clients: request deadline (stalled head, head trickled a byte "
           "every 0.5 s, stalled body)", len(slow), f"each closed by the server, nothing "
           f"answered: after {', '.join(f'{t:.1f}' for t in closed.values())} s "
           f"(deadline {DEADLINE} s, checked every second)")  # fmt: skip

    # Readers that never read: the bundle's output is given up once nothing has moved for the
    # idle timeout, whether it was queued whole or its thread waits at the watermark, and every
    # thread is free again.
    big = f"{tenant}-big"
    seed_skills(owner_engine(server.database_url), big, 0, LARGE_BUNDLE_ENTITIES, "d" * 5000)
    auditor = make_token(big, "auditor", "reader", subject="audrey")
    with _held() as readers:
        readers.extend(_export_stall(server.port, auditor) for _ in range(threads))
        settled = _wait_until_idle(server)
        assert [_status(s) for s in readers] == [(200, False)] * threads, "each bundle was sent"
        time.sleep(DEADLINE + 2)  # nothing has moved on any of them for the idle timeout
        drained = [_drain(s) for s in readers]
    size = _bundle_size(server, auditor)
    assert all(eof and received < size for eof, received in drained), (size, drained)
    worst = probes.run(f"{threads} abandoned bundles of {size:,} bytes")
    record(request.node, f"slow clients: {threads} export clients that never read a bundle of "
           f"{size:,} bytes (idle timeout {DEADLINE} s)", threads, f"each dropped by the server "
           f"(at most {max(r for _, r in drained):,} bytes sent, server idle {settled:.1f} s "
           f"after the requests); every thread free again: {_outcome(worst)}")  # fmt: skip


def test_a_client_resetting_a_queued_answer_leaves_the_server_serving(
    serve, owner_engine, tenant, make_token, request
):
    """A client asks for a bundle larger than the kernel's buffers with `Connection: close`,
    never reads, and resets the connection once the whole answer is queued: the server's
    failed send closes the connection, then its close-after-the-answer closes it again. That
    second close must be nothing (it once raised, and the error ended the server's loop:
    every connection and every later request lost)."""
    server = serve(**server_settings(), **HOLD_ENV)
    seed_skills(owner_engine(server.database_url), tenant, 0, BUNDLE_ENTITIES, "d" * 5000)
    auditor = make_token(tenant, "auditor", "reader", subject="audrey")
    size = _bundle_size(server, auditor)
    assert size > _kernel_buffers(), (size, _kernel_buffers())
    sock = _connect(server.port, rcvbuf=4096)
    sock.sendall(
        b"GET /export/bundle HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Authorization: Bearer " + auditor.encode() + b"\r\n\r\n"
    )
    _wait_until_idle(server)  # the bundle is written whole into the server's output buffer
    assert _status(sock) == (200, False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # a reset, with most of the answer still queued
    time.sleep(1)
    assert server.proc is not None and server.proc.poll() is None, server.stderr()
    health = call(server.base, "GET", "/registry/healthz", timeout=5)
    assert health.status == 200, (health, server.stderr())
    record(request.node, "slow clients: a reset while a large answer is queued "
           "(Connection: close)", 1, "the server keeps serving (healthz 200)")  # fmt: skip


@contextlib.contextmanager
def _functions_framework(port: int, env: dict[str, str]) -> Iterator[str]:
    """The registry function as its container runs it: `functions-framework`, whose own
    gunicorn reads WORKERS, THREADS and CLOUD_RUN_TIMEOUT_SECONDS from the environment."""
    command = [
        str(Path(sys.executable).parent / "functions-framework"),
        "--target=registry",
        "--source=main.py",
        f"--port={port}",
        "--host=127.0.0.1",
    ]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):  # bounded: 30 s
            if call(base, "GET", "/registry/healthz", timeout=2).status == 200:
                break
            assert proc.poll() is None, "functions-framework exited"
            time.sleep(0.2)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.mark.xfail(
    strict=True,
    reason="the cloud container's own server (functions-framework's gunicorn, 1 worker x "
    "THREADS 8 from Terraform) reads a request's head and body in its threads with no "
    "deadline; in the cloud, Google's front end stands before it (see shared/web/serving.py)",
)
def test_the_cloud_container_alone_under_terraform_settings(tenant, make_token, request):
    settings = server_settings()
    threads = int(settings["THREADS"])
    port = free_port()
    author = make_token(tenant, "author", "reader", subject="alice")
    with _functions_framework(port, settings) as base, _held() as bodies:
        bodies.extend(_body_stall(port, author) for _ in range(threads))
        time.sleep(0.5)
        health = call(base, "GET", "/registry/healthz", timeout=3)
        answer = "timed out after 3 s" if health.status == 0 else f"{health.seconds:.2f} s"
        record(request.node, f"slow clients: {threads} partial bodies straight to the cloud's "
               f"container server (functions-framework's gunicorn, THREADS={threads})", threads,
               f"healthz {answer}")  # fmt: skip
        assert health.status == 200 and health.seconds < BOUND, health


def test_the_connection_limit_fits_the_files_the_process_may_open():
    """With a hard limit of 512 open files, 1000 connections (3 files each at most) cannot be:
    the limit becomes what fits beside the files kept back; with room, the soft limit is raised
    to fit 1000."""
    probe = (
        "import resource; from shared.web import serving\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, {hard}))\n"
        "print(serving.connection_limit(1000), resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    fits = {}
    for hard in (512, 8192):
        out = subprocess.run(
            [sys.executable, "-c", probe.format(hard=hard)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        fits[hard] = (int(out[0]), int(out[1]))
    assert fits[512] == ((512 - 256) // 3, 512), fits
    assert fits[8192] == (1000, 1000 * 3 + 256), fits
