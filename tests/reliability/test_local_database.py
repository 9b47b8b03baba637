"""The CLI on the embedded PostgreSQL `make run` uses, from other shells, and how that server
ends: real `plant` processes on a data directory of the test's own (never the repository's
.data), with DATABASE_URL unset as on a fresh clone.

- `plant audit` and `plant export` work from a second process while `plant serve` holds the
  server, against the same data, and leave that server running when they exit;
- `requested_by` of a CLI audit is the OS user with USER and LOGNAME unset, or `--as NAME`
  (required when the OS user has no name: tests/evidence/test_cli.py);
- SIGTERM and SIGINT to `plant serve` stop the postmaster it started; after a `kill -9`, the
  next run reuses the postmaster left behind (never a second one) and stops it in turn;
- a server two processes use stops only when the last one leaves.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from tests.support.plant_server import PLANT, ROOT, PlantServer, call, free_port
from tests.support.reliability_table import record

STOPPED_WITHIN = 20  # seconds: the "within a few seconds", with room for a busy machine


def _template() -> Path:
    """A data directory whose embedded PostgreSQL is initialised and migrated, made once."""
    parent = Path(tempfile.mkdtemp(prefix="plant-local-template-"))
    parent.chmod(0o755)  # the server runs as its own user when the tests run as root
    done = plant(parent, "migrate")
    assert done.returncode == 0, done.stderr
    return parent


@pytest.fixture(scope="module")
def template() -> Iterator[Path]:
    path = _template()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def data_dir(template: Path) -> Iterator[Path]:
    """A copy of the template (ownership kept: the server's files are its user's)."""
    parent = Path(tempfile.mkdtemp(prefix="plant-local-"))
    parent.chmod(0o755)
    subprocess.run(["cp", "-a", f"{template}/.", str(parent)], check=True)
    yield parent
    for pid in postmasters(parent / "pg"):  # a failed test must not leave its server behind
        psutil.Process(pid).kill()
    shutil.rmtree(parent, ignore_errors=True)


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a shell on a fresh clone: no DATABASE_URL, no USER nor LOGNAME."""
    unset = {"DATABASE_URL", "PLANT_TEST_SERVER_URL", "USER", "LOGNAME", "LNAME", "USERNAME"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    return {**env, "PLANT_DATA_DIR": str(data_dir), "PLANT_ENV": "local", **extra}


def plant(data_dir: Path, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PLANT), *args],
        cwd=ROOT,
        env=env_for(data_dir),
        capture_output=True,
        text=True,
        timeout=180,
        **kw,  # type: ignore[call-overload]
    )


def postmasters(pgdata: Path) -> list[int]:
    """Live postmasters on ``pgdata`` (backends change their command line; zombies are gone)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if (
            proc.info["name"] == "postgres"
            and str(pgdata) in cmdline
            and proc.info["status"] != psutil.STATUS_ZOMBIE
        ):
            found.append(proc.pid)
    return found


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().splitlines()[0])


def gone(pid: int, within: float = STOPPED_WITHIN) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def served(data_dir: Path, log_dir: Path) -> PlantServer:
    """`plant serve` as `make run` starts it: on the embedded server, no DATABASE_URL."""
    server = PlantServer(database_url=None, data_dir=data_dir, log_dir=log_dir)
    server.env = {k: "" for k in ("USER", "LOGNAME")}
    server.start()
    return server


def signal_and_wait(server: PlantServer, signum: int) -> int:
    """Send ``signum`` to `plant serve` itself (as make, a supervisor or Ctrl-C does)."""
    assert server.proc is not None
    server.proc.send_signal(signum)
    return server.proc.wait(timeout=60)


def test_a_second_shell_audits_and_exports_what_make_run_serves(data_dir, tmp_path, request):
    pgdata = data_dir / "pg"
    server = served(data_dir, tmp_path)
    try:
        pid = postmaster_pid(pgdata)
        tenant = f"t-{uuid.uuid4().hex[:12]}"
        token = plant(data_dir, "token", "--sub", "alice", "--tenant", tenant, "--role", "author")
        assert token.returncode == 0, token.stderr
        name = f"skill-{uuid.uuid4().hex[:8]}"
        created = call(
            server.base,
            "POST",
            "/registry/skills",
            token.stdout.strip(),
            {"name": name, "description": "made through the server", "category": "technical"},
        )
        assert created.status == 201, created.body

        audit = plant(data_dir, "audit", "--tenant", tenant, "--mode", "full")
        assert audit.returncode == 0, audit.stderr
        run = json.loads(audit.stdout)
        assert run["status"] == "completed" and run["findings"] == [], run
        assert run["summary"]["entries_verified"] >= 1, run  # the server's write, audited
        assert run["requested_by"] == f"operator:{pwd.getpwuid(os.getuid()).pw_name}", run

        named = plant(data_dir, "audit", "--tenant", tenant, "--as", "carol")
        assert named.returncode == 0, named.stderr
        assert json.loads(named.stdout)["requested_by"] == "operator:carol"

        report = plant(data_dir, "export", "report", "--tenant", tenant, "--as", "carol")
        assert report.returncode == 0, report.stderr
        doc = json.loads(report.stdout)
        assert doc["summary"]["generated_by"] == "operator:carol", doc["summary"]
        assert name in report.stdout, doc
        assert doc["summary"]["latest_audit"]["id"] == json.loads(named.stdout)["id"]

        # The commands reused the server make run holds, left it running, and started no other.
        assert postmasters(pgdata) == [pid]
        auditor = plant(data_dir, "token", "--sub", "aud", "--tenant", tenant, "--role", "auditor")
        seen = call(server.base, "GET", f"/audit/runs/{run['id']}", auditor.stdout.strip())
        assert seen.status == 200 and seen.body["requested_by"] == run["requested_by"], seen
        assert call(server.base, "GET", "/registry/healthz").status == 200
    finally:
        server.stop()
    stopped = gone(pid)
    record(
        request.node,
        "plant audit / export from a second shell while plant serve holds the embedded database",
        3,
        f"all exit 0 on the served data, requested_by the OS user or --as; the server kept "
        f"running, one postmaster; SIGTERM then stopped it: {stopped}",
    )
    assert stopped, f"postmaster {pid} still runs {STOPPED_WITHIN} s after SIGTERM"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_postgres_even_after_a_kill_9(data_dir, tmp_path, signum, request):
    pgdata = data_dir / "pg"
    # A clean run: the signal stops the postmaster it started.
    first = served(data_dir, tmp_path)
    pid = postmaster_pid(pgdata)
    assert signal_and_wait(first, signum) in (0, 128 + signum)
    assert gone(pid), f"postmaster {pid} still runs after {signum.name} to plant serve"

    # A run killed with kill -9 (no handler runs) leaves its postmaster behind ...
    killed = served(data_dir, tmp_path)
    left = postmaster_pid(pgdata)
    killed.kill9()
    assert postmasters(pgdata) == [left]
    # ... the next run reuses it (never a second one) and the signal stops it.
    after = served(data_dir, tmp_path)
    assert postmasters(pgdata) == [left]
    assert signal_and_wait(after, signum) in (0, 128 + signum)
    stopped = gone(left)
    record(
        request.node,
        f"{signum.name} to plant serve, on a fresh run and on the run after a kill -9",
        2,
        f"postmaster stopped both times: {stopped}; the run after kill -9 reused the left one",
    )
    assert stopped, f"postmaster {left}, reused after a kill -9, still runs after {signum.name}"


def test_after_a_kill_9_cli_commands_reuse_the_left_postgres_and_stop_it(
    data_dir, tmp_path, request
):
    pgdata = data_dir / "pg"
    killed = served(data_dir, tmp_path)
    left = postmaster_pid(pgdata)
    killed.kill9()
    with ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(lambda n: plant(data_dir, "audit", "--tenant", f"t-{n}"), range(3)))
    assert [r.returncode for r in runs] == [0, 0, 0], [r.stderr for r in runs]
    stopped = gone(left)
    # With nothing running, three commands at once start one server and the last stops it.
    with ThreadPoolExecutor(3) as pool:
        again = list(pool.map(lambda n: plant(data_dir, "audit", "--tenant", f"t-{n}"), range(3)))
    assert [r.returncode for r in again] == [0, 0, 0], [r.stderr for r in again]
    log = (pgdata / "log").read_text()
    record(
        request.node,
        "three CLI audits at once, on a postmaster left by kill -9, then on none",
        6,
        f"all exit 0; the left postmaster reused and stopped: {stopped}; "
        f"postmasters afterwards: {postmasters(pgdata)}",
    )
    assert stopped, f"postmaster {left} left by kill -9 still runs after the CLI commands"
    assert postmasters(pgdata) == []
    assert "another server might be running" not in log


def test_a_server_two_processes_use_stops_when_the_last_leaves(data_dir, tmp_path, request):
    pgdata = data_dir / "pg"
    first = served(data_dir, tmp_path)
    second = served(data_dir, tmp_path)
    pid = postmaster_pid(pgdata)
    assert postmasters(pgdata) == [pid]
    signal_and_wait(first, signal.SIGTERM)
    kept = postmasters(pgdata) == [pid] and call(second.base, "GET", "/registry/healthz").ok
    signal_and_wait(second, signal.SIGTERM)
    stopped = gone(pid)
    record(
        request.node,
        "SIGTERM to one of two plant serve on one embedded database",
        1,
        f"the other kept its server: {kept}; stopped when the last left: {stopped}",
    )
    assert kept, "SIGTERM to one plant serve stopped the server the other still uses"
    assert stopped, f"postmaster {pid} still runs after both plant serve stopped"


def test_sigterm_while_plant_serve_starts_stops_its_postgres(data_dir, tmp_path, request):
    """SIGTERM as soon as the postmaster is up: plant serve is still migrating and importing
    the functions, before waitress (and its own handler) runs."""
    pgdata = data_dir / "pg"
    with (tmp_path / "starting.err").open("wb") as err:
        proc = subprocess.Popen(
            [str(PLANT), "serve"],
            cwd=ROOT,
            env=env_for(data_dir, PORT=str(free_port())),
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _ready(pgdata):
        time.sleep(0.01)
    pid = postmaster_pid(pgdata)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    stopped = gone(pid)
    record(
        request.node,
        "SIGTERM to plant serve while it starts (postmaster up, not yet serving)",
        1,
        f"plant exit {code}; postmaster stopped: {stopped}",
    )
    assert stopped, f"postmaster {pid} still runs after SIGTERM during start-up"


def _ready(pgdata: Path) -> bool:
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[7].strip() == "ready"
