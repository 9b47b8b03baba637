"""PostgreSQL stopped under load (a fast shutdown, then an immediate one that needs crash
recovery) and started again, with the same server process throughout: while the database is
down every request gets 503 + Retry-After as problem+json, never a 500; once it is back the
pool recovers by itself within seconds; every acknowledged write is there."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from shared.errors import ServiceUnavailable
from shared.storage.engine import Database, local_engine
from tests.support.databases import create_database
from tests.support.load import Writers
from tests.support.plant_server import call, check_ledger
from tests.support.reliability_table import record

RECOVERY_SECONDS = 10  # generous on 2 busy cores; the pool needs one failed ping per connection
DOWN_SECONDS = 2.0


def _wait_for_acks(writers: Writers, more: int) -> None:
    target = writers.acknowledged() + more
    deadline = time.monotonic() + 30
    while writers.acknowledged() < target:
        assert time.monotonic() < deadline, "the load never got going"
        time.sleep(0.05)


def _is_retry_problem(reply) -> bool:
    return (
        reply.status == 503
        and bool(reply.headers.get("retry-after"))
        and reply.headers.get("content-type", "").startswith("application/problem+json")
        and isinstance(reply.body, dict)
        and reply.body.get("status") == 503
    )


def test_postgres_restart_under_load_is_503_then_recovers_without_a_server_restart(
    private_postgres, serve, owner_engine, tenant, make_token, request
):
    url = create_database(private_postgres.uri, "plant_restart")
    server = serve(url)
    reader = make_token(tenant, "reader", subject="rita")
    writers = Writers(server.base, make_token(tenant, "author", "reader", subject="alice"), 4)
    writers.start()
    windows = []  # (mode, down_from, down_to, recovered_at)
    probes = []
    try:
        for mode in ("fast", "immediate"):
            _wait_for_acks(writers, 20)
            private_postgres.stop(mode)
            down_from = time.monotonic()
            while time.monotonic() < down_from + DOWN_SECONDS:
                probes.append(call(server.base, "GET", "/registry/skills", reader))
                time.sleep(0.1)
            down_to = time.monotonic()
            private_postgres.start()
            up = time.monotonic()
            while True:
                reply = call(server.base, "GET", "/registry/skills", reader)
                if reply.ok:
                    break
                assert time.monotonic() < up + RECOVERY_SECONDS, (mode, reply.status, reply.body)
                time.sleep(0.1)
            windows.append((mode, down_from, down_to, time.monotonic()))
        _wait_for_acks(writers, 20)
    finally:
        writers.stop()

    assert server.proc is not None and server.proc.poll() is None and server.starts == 1
    replies = [(s.sent, s.answered, s.reply) for s in writers.replies]
    assert not [r for *_, r in replies if r.status == 0], "a request got no HTTP answer"
    assert not [r for *_, r in replies if r.status >= 500 and r.status != 503]
    assert all(_is_retry_problem(p) for p in probes), [(p.status, p.body) for p in probes]
    during = [r for sent, answered, r in replies if _inside(sent, answered, windows)]
    assert during and all(_is_retry_problem(r) for r in during), [r.status for r in during]
    after = [r for sent, _, r in replies if sent > windows[-1][3]]
    assert after and all(r.ok for r in after), [(r.status, r.body) for r in after if not r.ok]
    unavailable = sum(1 for *_, r in replies if r.status == 503) + len(probes)

    problems, lost = check_ledger(owner_engine(url), tenant, writers.acks)
    audit = call(
        server.base, "POST", "/audit/runs", make_token(tenant, "auditor"), {"mode": "full"}
    )
    recovery = ", ".join(f"{m} {end - to:.1f} s" for m, _, to, end in windows)
    record(
        request.node,
        "PostgreSQL stopped (fast, then immediate) and restarted under load",
        len(windows),
        f"{unavailable} requests answered 503 + Retry-After while down, 0 with a 500; pool "
        f"recovered with no server restart ({recovery}); {len(writers.acks)} acknowledged "
        f"writes all present; full audit: "
        f"{len(audit.body.get('findings', [])) if audit.ok else audit.status} findings",
        lost,
    )
    assert problems == [], problems[:10]
    assert audit.status == 201 and audit.body["findings"] == [], audit.body


def _inside(sent: float, answered: float, windows) -> bool:
    """Sent after the database was down and answered before it was started again."""
    return any(down_from <= sent and answered <= down_to for _, down_from, down_to, _ in windows)


# The two ways pg8000 lets a lost connection out, each once, on real sockets.


def test_a_unix_socket_with_no_database_behind_it_is_503(tmp_path):
    db = Database(local_engine(f"postgresql://postgres@/plant?host={tmp_path}", 1, 1000))
    with pytest.raises(ServiceUnavailable), db.transaction("t"):
        pass
    with pytest.raises(ServiceUnavailable):
        db.ping()
    db.engine.dispose()


def test_a_connection_reset_during_the_handshake_is_503():
    """A peer that takes pg8000's first message and resets the connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def reset_each() -> None:
        while True:
            try:
                peer, _ = listener.accept()
            except OSError:
                return
            peer.recv(8)
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            peer.close()

    threading.Thread(target=reset_each, daemon=True).start()
    db = Database(local_engine(f"postgresql://postgres@127.0.0.1:{port}/plant", 1, 1000))
    try:
        with pytest.raises(ServiceUnavailable), db.transaction("t"):
            pass
        with pytest.raises(ServiceUnavailable):
            db.ping()
    finally:
        listener.close()
        db.engine.dispose()


def test_a_connection_reset_while_a_statement_runs_is_503_and_the_pool_heals(database_url, tenant):
    """A TCP proxy in front of the real database resets the connection mid-statement (on an
    autocommit connection, where pg8000 lets the reset out raw); the next transaction on the
    same pool gets a fresh connection and works."""
    proxy = _ResettingProxy(make_url(database_url))
    url = make_url(database_url).set(host="127.0.0.1", port=proxy.port, query={})
    db = Database(local_engine(url.render_as_string(hide_password=False), 1, 5000))
    try:
        with (
            pytest.raises(ServiceUnavailable),
            db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
        ):
            threading.Timer(0.3, proxy.reset_all).start()
            conn.execute(text("SELECT pg_sleep(3)"))
        with db.transaction(tenant) as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        proxy.close()
        db.engine.dispose()


class _ResettingProxy:
    """Pipes TCP connections to the database (TCP or unix socket) until ``reset_all``."""

    def __init__(self, target) -> None:
        host = target.query.get("host")
        self.target = (
            (socket.AF_UNIX, f"{host}/.s.PGSQL.{target.port or 5432}")
            if isinstance(host, str) and host.startswith("/")
            else (socket.AF_INET, (target.host, target.port or 5432))
        )
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.clients: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            family, address = self.target
            upstream = socket.socket(family, socket.SOCK_STREAM)
            upstream.connect(address)
            self.clients.append(client)
            for a, b in ((client, upstream), (upstream, client)):
                a.settimeout(0.05)  # a socket closed under a blocked recv would not reset
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                try:
                    data = source.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            sink.close()

    def reset_all(self) -> None:
        while self.clients:
            client = self.clients.pop()
            with contextlib.suppress(OSError):  # already closed by its pipe
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()

    def close(self) -> None:
        self.listener.close()
        self.reset_all()
