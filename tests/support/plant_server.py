"""The real server as an operator runs it (`plant serve`: waitress over every function), an HTTP
client that never raises, and the ledger checks every fault test ends with."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import text
from sqlalchemy.engine import Engine

from shared.registry import documents

ROOT = Path(__file__).resolve().parents[2]
PLANT = Path(sys.executable).parent / "plant"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Reply:
    status: int  # 0: no HTTP answer at all (connection refused or reset)
    headers: dict[str, str]
    body: Any
    seconds: float

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def call(
    base: str,
    method: str,
    path: str,
    token: str | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> Reply:
    """One request on a fresh connection; a lost connection is status 0, never an exception."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, head, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, head, raw = error.code, dict(error.headers), error.read()
    except (OSError, http.client.HTTPException) as error:  # refused, reset, timed out, truncated
        return Reply(0, {}, repr(error), time.perf_counter() - started)
    seconds = time.perf_counter() - started
    try:
        parsed: Any = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw
    return Reply(status, {k.lower(): v for k, v in head.items()}, parsed, seconds)


@dataclass
class PlantServer:
    """`plant serve` in its own process group, so `kill -9` takes plant, its server and
    any child at once, exactly like a machine losing power under them. With no
    ``database_url`` it serves the embedded PostgreSQL under ``data_dir`` (as `make run`)."""

    database_url: str | None
    data_dir: Path
    log_dir: Path
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        env = {
            **os.environ,
            "PLANT_DATA_DIR": str(self.data_dir),
            "PLANT_ENV": "local",
            "PORT": str(self.port),
            **self.env,
        }
        env.pop("DATABASE_URL", None)
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        self.starts += 1
        with self._log("out").open("wb") as out, self._log("err").open("wb") as err:
            self.proc = subprocess.Popen(
                [str(PLANT), "serve", "--host", "127.0.0.1"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"plant serve exited {self.proc.returncode}: {self.stderr()}")
            if call(self.base, "GET", "/registry/healthz", timeout=2).status == 200:
                return
            time.sleep(0.2)
        raise AssertionError(f"plant serve did not become healthy: {self.stderr()}")

    def _log(self, stream: str) -> Path:
        return self.log_dir / f"server-{self.port}-{self.starts}.{stream}"

    def stderr(self) -> str:
        path = self._log("err")
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def processes(self) -> list[psutil.Process]:
        """plant and any process it started."""
        assert self.proc is not None
        try:
            parent = psutil.Process(self.proc.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss(self) -> int:
        """Resident memory of the whole process tree, in bytes."""
        total = 0
        for proc in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += proc.memory_info().rss
        return total

    def kill9(self) -> None:
        """SIGKILL the whole process group and wait until none of it is left."""
        assert self.proc is not None
        tree = self.processes()
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        _, alive = psutil.wait_procs(tree, timeout=10)
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], alive

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill9()


@dataclass
class Ack:
    """A write the server acknowledged with a 2xx: what it said it stored."""

    entity_id: str
    version: int
    body: dict[str, Any]
    receipt: dict[str, Any]


def ack_of(doc: dict[str, Any]) -> Ack:
    """The acknowledgement carried by a served document (a 2xx write's body; an amendment's
    or status change's ``cascade``, which lists other entities' versions, is not part of
    the version it stored, nor is its signed ``receipt``, kept beside it)."""
    stored = {name: value for name, value in doc.items() if name not in ("cascade", "receipt")}
    return Ack(doc["identity"]["id"], doc["versioning"]["version"], stored, doc["receipt"])


def check_ledger(superuser: Engine, tenant: str, acks: list[Ack]) -> tuple[list[str], int]:
    """Every acknowledged write present byte for byte, and no half-written state.

    Returns (problems, number of acknowledged writes that are missing or differ). Checks:
    log indices contiguous from 0 and equal to the log head's size; each entity's versions
    contiguous from 1; its head names its last version and that version's index; each stored
    digest is SHA-256 of the stored bytes; each acknowledged document (digest, index and leaf
    hash included) equals the one served from the stored bytes.
    """
    problems: list[str] = []
    with superuser.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT idx, entry_type, entity_id::text, version, body, digest, leaf_hash "
                "FROM log_entries WHERE tenant_id = :t ORDER BY idx"
            ),
            {"t": tenant},
        ).all()
        size = conn.execute(
            text("SELECT size FROM log_heads WHERE tenant_id = :t"), {"t": tenant}
        ).scalar()
        heads = {
            r[0]: (r[1], r[2])
            for r in conn.execute(
                text(
                    "SELECT entity_id::text, version, log_index FROM entity_heads "
                    "WHERE tenant_id = :t"
                ),
                {"t": tenant},
            ).all()
        }
    indices = [r.idx for r in rows]
    if indices != list(range(len(rows))):
        problems.append(f"log indices are not contiguous from 0: {indices[:20]}...")
    if (size or 0) != len(rows):
        problems.append(f"log_heads.size {size} but {len(rows)} entries")
    versions: dict[str, list[tuple[int, int]]] = {}
    stored: dict[tuple[str, int], Any] = {}
    bodies = {r.idx: bytes(r.body) for r in rows}
    for r in rows:
        body = bytes(r.body)
        if bytes(r.digest) != hashlib.sha256(body).digest():
            problems.append(f"entry {r.idx}: digest is not SHA-256 of the stored bytes")
        if r.entry_type == "version":
            versions.setdefault(r.entity_id, []).append((r.version, r.idx))
            stored[(r.entity_id, r.version)] = documents.served(
                body, r.idx, bytes(r.leaf_hash), bytes(r.digest)
            )
    for entity, chain in versions.items():
        numbers = [v for v, _ in chain]
        if numbers != list(range(1, len(chain) + 1)):
            problems.append(f"{entity}: versions {numbers} are not contiguous from 1")
        if heads.get(entity) != chain[-1]:
            problems.append(f"{entity}: head {heads.get(entity)} but last version {chain[-1]}")
    for entity in set(heads) - set(versions):
        problems.append(f"{entity}: a head with no version in the log")
    lost = 0
    for ack in acks:
        doc = stored.get((ack.entity_id, ack.version))
        if doc != ack.body:
            lost += 1
            problems.append(f"acknowledged {ack.entity_id} v{ack.version} is missing or differs")
        elif not _receipt_holds(tenant, ack, bodies[doc["audit_trail"]["log_index"]]):
            problems.append(f"acknowledged {ack.entity_id} v{ack.version}: its receipt fails")
    return problems, lost


def _receipt_holds(tenant: str, ack: Ack, body: bytes) -> bool:
    """The write's receipt, signed by the registry's key for the bytes the log holds."""
    from shared.integrity import receipts
    from shared.tlog import keys

    index = ack.body["audit_trail"]["log_index"]
    try:
        receipts.verify(ack.receipt, keys.keyring().vkeys, keys.origin(tenant), index, entry=body)
    except receipts.ReceiptError:
        return False
    return True


@dataclass
class PrivatePostgres:
    """A PostgreSQL server of one test's own (the pgserver binaries, its own data directory),
    so stopping it never touches the server the rest of the suite shares."""

    server: Any  # pgserver.PostgresServer

    @property
    def uri(self) -> str:
        return self.server.get_uri()

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(list(args), pgdata=self.server.pgdata, user=self.server.system_user, timeout=60)

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-w", "-m", mode, "stop")

    def start(self) -> None:
        """Start it again on the same socket directory, so the same URL reaches it."""
        socket_dir = self.server.get_postmaster_info().socket_dir
        self._pg_ctl(
            "-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self.server.log), "start"
        )
