"""HTTP creates end to end: ``POST /registry/skills`` on the real server, started the way Cloud
Functions starts it (``functions-framework --target=registry``: functions-framework's gunicorn
application, one worker, THREADS=8 threads, timeout 0, PLANT_DB_POOL_SIZE=8, as
terraform/functions.tf sets them), against bench/plain_app.py served by the same class with the
same environment, inserting the same request bytes. Keep-alive clients (one connection per
client thread); latency is from sending a request to having read its whole response."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from bench import common, seed
from bench.db import plain_table

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# What terraform/functions.tf gives every function (one CPU, request concurrency 8).
SHIPPED_ENV = {"THREADS": "8", "PLANT_DB_POOL_SIZE": "8"}
P50_TARGET = 0.005  # seconds, one client
RATIO_TARGET = 1.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(proc: subprocess.Popen[bytes], port: int, path: str, limit: float = 60) -> float:
    """Poll ``path`` until it answers 200; seconds from now until then."""
    started = time.perf_counter()
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            conn.close()
            if response.status == 200:
                return time.perf_counter() - started
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        if time.perf_counter() - started > limit:
            raise RuntimeError(f"no 200 from {path} within {limit} s")
        time.sleep(0.005)


@contextmanager
def server(
    command: list[str], port: int, health: str, **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server until the block ends; its stderr goes to a file whose tail is shown if
    anything in the block fails (a pipe nobody reads could fill up and stall it)."""
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=errors
        )
        try:
            wait_healthy(proc, port, health)
            yield proc
        except Exception as exc:
            errors.seek(0)
            tail = errors.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"{exc}\n--- server stderr ---\n{tail}") from exc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def registry_command(port: int) -> list[str]:
    return [
        str(BIN / "functions-framework"), "--target=registry", "--source=main.py",
        f"--port={port}", "--host=127.0.0.1",
    ]  # fmt: skip


def plain_command(port: int) -> list[str]:
    return [sys.executable, "-m", "bench.plain_app", "--port", str(port)]


def author_token(tenant: str) -> str:
    """A local token for an author of ``tenant``, valid for an hour."""
    from shared.config import settings
    from shared.security.local_tokens import LocalTokens

    return LocalTokens.from_settings(settings()).issue("bench", tenant, ["author"], ttl=3600)


def _load(
    port: int, path: str, bodies: list[bytes], clients: int, token: str
) -> tuple[float, list[float]]:
    """``clients`` threads, each with one keep-alive connection, POST their share of
    ``bodies``; (wall seconds, every request's latency)."""
    per = len(bodies) // clients
    latencies: list[list[float]] = [[] for _ in range(clients)]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(clients)]

    def work(n: int) -> None:
        conn = conns[n]
        for body in bodies[n * per : (n + 1) * per]:
            started = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            latencies[n].append(time.perf_counter() - started)
            if response.status != 201:
                raise RuntimeError(f"{path}: {response.status} {data[:500]!r}")

    for conn in conns:
        conn.connect()
    wall = common.threads(work, clients)
    for conn in conns:
        conn.close()
    return wall, [x for lane in latencies for x in lane]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children (gunicorn's workers)."""
    import psutil

    total = 0.0
    proc = psutil.Process(pid)
    for p in [proc, *proc.children(recursive=True)]:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


class _Side:
    """One server under load: each ``run`` is one timed load of ``bodies`` by ``clients``
    keep-alive clients (a fresh tenant each time for the registry); latencies and server CPU
    are kept across runs."""

    def __init__(
        self, proc: subprocess.Popen[bytes], port: int, fresh_tenant: bool, bodies: list[bytes]
    ) -> None:
        self.proc, self.port, self.fresh_tenant, self.bodies = proc, port, fresh_tenant, bodies
        self.latencies: list[float] = []
        self.cpu = 0.0

    def run(self, clients: int) -> float:
        token = author_token(f"h-{uuid.uuid4().hex[:10]}" if self.fresh_tenant else "plain")
        before = cpu_seconds(self.proc.pid)
        wall, latencies = _load(self.port, "/skills", self.bodies, clients, token)
        self.cpu += cpu_seconds(self.proc.pid) - before
        self.latencies += latencies
        return wall

    def cpu_per_request(self) -> float:
        return self.cpu / len(self.latencies)


def bench_http(single: int, clients: int, per_client: int) -> list[dict[str, Any]]:
    plain_table("bench_plain")
    sizes = {1: single, clients: clients * per_client}
    bodies = {
        n: [json.dumps(b).encode() for b in seed.skill_bodies(seed.SEED, count)]
        for n, count in sizes.items()
    }
    warm = [json.dumps(b).encode() for b in seed.skill_bodies(seed.SEED + 1, 4 * clients)]
    # Both servers run throughout and take turns, so a slow spell of the machine falls on
    # both sides rather than on the ratio.
    measured: dict[int, tuple[dict[str, float], dict[str, float], _Side, _Side]] = {}
    with ExitStack() as stack:
        procs = {}
        for side, command in (("product", registry_command), ("baseline", plain_command)):
            port = free_port()
            procs[side] = (
                stack.enter_context(server(command(port), port, "/healthz", **SHIPPED_ENV)),
                port,
            )
            _load(port, "/skills", warm, clients, author_token(f"w-{uuid.uuid4().hex[:10]}"))
        for n in sizes:
            product = _Side(*procs["product"], True, bodies[n])
            baseline = _Side(*procs["baseline"], False, bodies[n])
            prod_t, base_t = common.interleaved(partial(product.run, n), partial(baseline.run, n))
            measured[n] = (prod_t, base_t, product, baseline)
    out = []
    for n, count in sizes.items():
        prod_t, base_t, product, baseline = measured[n]
        prod_l, base_l = product.latencies, baseline.latencies
        prod_cpu, base_cpu = product.cpu_per_request(), baseline.cpu_per_request()
        p50, p99 = common.percentile(prod_l, 50), common.percentile(prod_l, 99)
        b50, b99 = common.percentile(base_l, 50), common.percentile(base_l, 99)
        targets = [common.at_most("ratio", prod_t["median"] / base_t["median"], RATIO_TARGET, "x")]
        if n == 1:
            targets.insert(0, common.at_most("p50", p50, P50_TARGET, "s"))
        out.append(
            common.result(
                f"HTTP POST /registry/skills, {n} keep-alive client(s)",
                common.side(prod_t, count, "req/s", "registry (functions-framework)"),
                common.side(base_t, count, "req/s", "minimal function, plain INSERT"),
                operations=count,
                details=[
                    f"product p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms",
                    f"baseline p50 {b50 * 1000:.2f} ms, p99 {b99 * 1000:.2f} ms",
                    f"server CPU per request: product {prod_cpu * 1000:.2f} ms, baseline "
                    f"{base_cpu * 1000:.2f} ms (ratio {prod_cpu / base_cpu:.2f}: less moved by "
                    "the machine's load than the times)",
                    "gunicorn 1 worker x 8 threads, pool 8 (terraform's settings)",
                ],
                targets=targets,
            )
        )
    return out
