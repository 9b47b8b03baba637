"""A TCP proxy that delays every chunk by a fixed time in each direction, to stand between the
benchmark and PostgreSQL like a network would (Cloud SQL is a round trip away, the embedded
server is not).

Each chunk read from one side is written to the other ``delay`` seconds after it arrived, in
order; chunks in flight do not wait for each other, so the link adds latency, not a
bandwidth limit. The proxy runs as its own process (``python -m bench.proxy``), so its
threads never compete for the benchmark's GIL. ``LatencyProxy`` starts one and points
DATABASE_URL through it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _forward(source: socket.socket, target: socket.socket, delay: float) -> None:
    """Copy ``source`` to ``target``, each chunk ``delay`` seconds after it arrived. One
    thread reads and stamps; this one sleeps until each chunk is due, waking a learnt margin
    early because a virtual machine's sleeps overshoot by a quarter of a millisecond."""
    chunks: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()

    def receive() -> None:
        while True:
            try:
                data = source.recv(1 << 16)
            except OSError:
                data = b""
            chunks.put((time.perf_counter() + delay, data))
            if not data:
                return

    threading.Thread(target=receive, daemon=True).start()
    slack = 0.0  # how late sleeps wake up on this machine, learnt as it goes
    while True:
        due, data = chunks.get()
        wait = due - time.perf_counter()
        if wait > slack:
            time.sleep(wait - slack)
            late = time.perf_counter() - due
            slack = min(max(slack + 0.25 * late, 0.0), delay / 2)
        if not data:
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)
            return
        try:
            target.sendall(data)
        except OSError:
            return


def _connect(upstream: str) -> socket.socket:
    if upstream.startswith("/"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(upstream)
        return sock
    host, _, port = upstream.rpartition(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _handle(client: socket.socket, upstream: str, delay: float) -> None:
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        server = _connect(upstream)
    except OSError:
        client.close()
        return
    threads = [
        threading.Thread(target=_forward, args=(client, server, delay), daemon=True),
        threading.Thread(target=_forward, args=(server, client, delay), daemon=True),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    server.close()


def serve(listen_port: int, upstream: str, delay: float) -> None:
    listener = socket.create_server(("127.0.0.1", listen_port), backlog=256)
    print(listener.getsockname()[1], flush=True)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_handle, args=(client, upstream, delay), daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any)")
    parser.add_argument("--upstream", required=True, help="HOST:PORT or a unix socket path")
    parser.add_argument("--delay-ms", type=float, default=1.0, help="delay each way")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        serve(args.port, args.upstream, args.delay_ms / 1000)


def upstream_of(database_url: str) -> str:
    """Where DATABASE_URL's server listens: ``host:port`` or a unix socket path."""
    from shared.storage.urls import pg8000_url

    url = pg8000_url(database_url)
    sock = url.query.get("unix_sock")
    if isinstance(sock, str):
        return sock
    return f"{url.host or '127.0.0.1'}:{url.port or 5432}"


def through(database_url: str, port: int) -> str:
    """DATABASE_URL with its host and port replaced by the proxy's."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    query = {k: v for k, v in url.query.items() if k != "host"}
    url = url.set(host="127.0.0.1", port=port, query=query)
    return url.render_as_string(hide_password=False)


@contextmanager
def proxy_to(upstream: str, delay_ms: float = 1.0) -> Iterator[int]:
    """Start a proxy to ``upstream`` (HOST:PORT or a unix socket); yield its port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.proxy", "--upstream", upstream,
         "--delay-ms", str(delay_ms)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env=dict(os.environ),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def latency_proxy(database_url: str, delay_ms: float = 1.0) -> Iterator[str]:
    """Start a proxy to DATABASE_URL's server; yield the URL that goes through it."""
    with proxy_to(upstream_of(database_url), delay_ms) as port:
        yield through(database_url, port)


@contextmanager
def database_through(url: str, **env: str) -> Iterator[None]:
    """Make the process's settings and pool use ``url`` (and extra env) inside the block."""
    from bench.db import reset_process

    saved = {k: os.environ.get(k) for k in ("DATABASE_URL", *env)}
    os.environ["DATABASE_URL"] = url
    os.environ.update(env)
    reset_process()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_process()


if __name__ == "__main__":
    main()
