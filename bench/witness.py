"""Tiles and witnesses (issue 25).

- Tiles served per second: a full level-0 tile (8,192 bytes) GET from the log function
  (functions-framework, a reader's token, one keep-alive connection), against the floor of
  the same bytes from the static mirror a seal wrote, served by Python's own static file
  server (what a mirror reader needs with nothing of ours running).
- The cost a witness adds to a seal: append one entry, then seal with one witness of ours
  (functions-framework --target=witness, its own key) against the same seal with no witness
  configured, on loopback and with 1 ms added each way by bench/proxy.py.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import common
from bench.http import BIN, free_port, server
from bench.proxy import proxy_to

ROOT = Path(__file__).resolve().parents[1]


def _gets(port: int, path: str, count: int, headers: dict[str, str]) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.perf_counter()
    for _ in range(count):
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        if response.status != 200 or len(response.read()) != 8192:
            raise RuntimeError(f"GET {path}: {response.status}")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def _reader_token(tenant: str) -> str:
    from shared.config import settings
    from shared.security.local_tokens import LocalTokens

    return LocalTokens.from_settings(settings()).issue("bench", tenant, ["reader"], ttl=3600)


def bench_tiles(count: int) -> dict[str, Any]:
    from bench.seed import seeded_tenant
    from shared import tlog
    from shared.config import settings

    tenant = seeded_tenant("tiles", 1_000)
    tlog.seal(tenant)
    mirror = (settings().anchor_dir or settings().data_dir / "anchors") / tenant / "tiles"
    token = {"Authorization": f"Bearer {_reader_token(tenant)}"}
    port, static = free_port(), free_port()
    command = [
        str(BIN / "functions-framework"), "--target=log", "--source=main.py",
        f"--port={port}", "--host=127.0.0.1",
    ]  # fmt: skip
    files = [sys.executable, "-m", "http.server", str(static), "--bind", "127.0.0.1",
             "--directory", str(mirror)]  # fmt: skip
    with server(command, port, "/log/healthz"), server(files, static, "/checkpoint"):
        path = f"/log/tiles/{tenant}/tile/0/000"
        served, floor = common.interleaved(
            lambda: _gets(port, path, count, token), lambda: _gets(static, "/tile/0/000", count, {})
        )
    return common.result(
        "tiles: full tile GET from the log function vs the static mirror (http.server)",
        common.side(served, count, "tiles/s", "log function, token"),
        common.side(floor, count, "tiles/s", "static mirror"),
        operations=count,
        details=[f"tenant of 1,000 entries; {count} sequential GETs on one connection"],
    )


@contextmanager
def _witness(logs: dict[str, list[str]]) -> Iterator[tuple[int, str]]:
    """A witness of ours on its own port, with a fresh key; yields (port, its vkey)."""
    from shared.integrity.cosignature import WitnessSigner

    seed = os.urandom(32)
    with tempfile.TemporaryDirectory() as folder:
        key = Path(folder) / "witness.json"
        key.write_text(json.dumps({"name": "bench-w", "seed": base64.b64encode(seed).decode()}))
        port = free_port()
        command = [
            str(BIN / "functions-framework"), "--target=witness", "--source=main.py",
            f"--port={port}", "--host=127.0.0.1",
        ]  # fmt: skip
        env = {"PLANT_WITNESS_KEY_FILE": str(key), "PLANT_WITNESS_LOGS": json.dumps(logs)}
        with server(command, port, "/witness/healthz", **env):
            yield port, WitnessSigner.from_seed("bench-w", seed).vkey


def _seal_after_append(tenant: str, count: int) -> Callable[[], float]:
    from shared import tlog
    from shared.registry import writes
    from shared.security.principal import Principal

    author = Principal("bench", tenant, frozenset({"author"}))

    def run() -> float:
        total = 0.0
        for _ in range(count):
            body = {"name": f"w {os.urandom(6).hex()}", "description": "d", "category": "technical"}
            writes.create(author, "skills", body, "r")
            started = time.perf_counter()
            tlog.seal(tenant)
            total += time.perf_counter() - started
        return total

    return run


def _configured(document: str) -> None:
    from bench.db import reset_process

    if document:
        os.environ["PLANT_WITNESSES"] = document
    else:
        os.environ.pop("PLANT_WITNESSES", None)
    reset_process()


def bench_witness_seal(count: int) -> list[dict[str, Any]]:
    from shared.tlog import keys

    tenant = "witnessed"
    rows = []
    with _witness({keys.origin(tenant): keys.keyring().vkeys}) as (port, vkey):
        for label, delay in (("loopback", 0.0), ("1 ms each way", 1.0)):
            with proxy_to(f"127.0.0.1:{port}", delay) if delay else _nothing(port) as reach:
                entry = {
                    "name": "bench-w",
                    "vkey": vkey,
                    "url": f"http://127.0.0.1:{reach}/witness",
                }
                witnessed = json.dumps({tenant: [entry]})

                def with_witness(doc: str = witnessed) -> float:
                    _configured(doc)
                    return _seal_after_append(tenant, count)()

                def without() -> float:
                    _configured("")
                    return _seal_after_append(tenant, count)()

                product, floor = common.interleaved(with_witness, without)
                _configured("")
                rows.append(
                    common.result(
                        f"seal with one witness ({label}) vs no witness",
                        common.side(product, count, "seals/s", "seal + witness"),
                        common.side(floor, count, "seals/s", "seal alone"),
                        operations=count,
                        details=[
                            f"append 1 entry then seal (the seal timed), {count} times; the "
                            f"witness via {'bench/proxy.py' if delay else 'loopback'}"
                        ],
                    )
                )
    return rows


@contextmanager
def _nothing(port: int) -> Iterator[int]:
    yield port
