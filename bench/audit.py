"""Audits: a full audit of N entries (seal, checkpoints and anchors, every leaf recomputed from
the stored bytes and the signed root rebuilt, chains, heads and rules) against the floor of
reading the same rows and hashing them; then incremental audits, each of M entries appended
since the previous audit, against reading and hashing those M rows.

The floor reads the rows the fastest way this process can: the binary COPY reader the audit
itself uses (``shared.storage.copyread``), in the audit's ranges, each body hashed once as a
leaf. The older floor, pg8000 rows a batch at a time, is reported beside it."""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import re
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench import common, seed
from bench.db import superuser
from bench.proofs import sealed_tenant
from shared.config import settings

FULL_TARGET = 10.0  # seconds at 1,000,000 entries (issue #7)
FULL_RATIO_TARGET = 2.0
RSS_TARGET = 600.0  # MB, the full audit at 1,000,000 (issue 27, decision 3)
MAP_RATIO_TARGET = 1.3  # the full audit with the map check against it without (issue 24)
# The passes issue 22 added (receipts, heads present, certificates' columns, the catalog's
# defences, the logged history, the stored nodes, checkpoints present), timed in a full audit:
# each beside the same audit less its time.
_INSIDER_PASSES = (
    ("receipts", "receipts"),
    ("presence.heads", "heads present"),
    ("certificates", "certificates"),
    ("defences", "catalog defences"),
    ("history", "history"),
    ("nodes", "stored nodes"),
    ("checkpoints.present", "checkpoints present"),
)
INCREMENTAL_TARGET = 1.0  # seconds for 10,000 new entries
INCREMENTAL_RATIO_TARGET = 8.0  # issue 27, decision 3: x its floor, the seal included
ROOT = Path(__file__).resolve().parents[1]

# shared.audit.runs itself, not the package (whose operations load on first use): the run
# without an audit must hold the same code for "bytes an entry" to count the audit alone.
_PEAK_RSS = """
import os, re, resource, sys, threading, time
from shared.audit import runs
from shared import audit
from shared.security.principal import Principal
PAGE, tree_peak = os.sysconf("SC_PAGE_SIZE"), [0]
def resident(pid):
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * PAGE
    except OSError:  # a worker that has just ended
        return 0
def family(pid):  # a process and all its descendants
    out, todo = [], [pid]
    while todo:
        pid = todo.pop()
        out.append(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as listed:
                    todo += listed.read().split()
        except OSError:  # a process or thread that has just ended
            pass
    return out
def measure():  # the audit's processes together (its workers, their tracker)
    tree_peak[0] = max(tree_peak[0], sum(resident(p) for p in family(str(os.getpid()))))
def sample():
    while True:
        measure()
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()
if sys.argv[1]:
    run, _ = runs.run(Principal("bench", sys.argv[1], frozenset({"auditor"})), {"mode": "full"})
    assert run["findings"] == [], run["findings"][:3]
measure()
with open("/proc/self/status") as status:
    print(re.search(r"VmHWM:\\s+(\\d+) kB", status.read()).group(1))
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, tree_peak[0] // 1024)
"""


def _peak_rss(tenant: str | None) -> tuple[float, float, float]:
    """Peak RSS in MB of a fresh process that runs one full audit of ``tenant`` (None: that
    only imports what it would), as the audit function runs it: alone in its process. Read
    from VmHWM, the high-water mark of the process's own memory (``ru_maxrss`` would count
    the parent's, which a child holds between fork and exec); the largest of its worker
    processes' (``ru_maxrss`` of its children: spawned early, while it is still small); and
    the peak of the RSS of the process and its workers together, sampled every 20 ms (what
    the function's memory limit meets; pages the processes share count once each)."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, tenant or ""],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    own, children, together = done.stdout.split()[-3:]
    return int(own) / 1024, int(children) / 1024, int(together) / 1024


def _function_memory(name: str) -> str:
    """A function's ``memory`` in terraform/main.tf (what Cloud Run gives it)."""
    found = re.search(
        rf'^\s*{name}\s*=\s*{{[^}}]*memory\s*=\s*"([^"]+)"',
        (ROOT / "terraform" / "main.tf").read_text(),
        re.MULTILINE,
    )
    return found.group(1) if found else "unknown"


def _copy_and_hash(tenant: str, start: int, end: int) -> float:
    from shared.storage import copyread
    from shared.storage.engine import database

    started = time.perf_counter()
    zero = hashlib.sha256(b"\x00")
    with database().transaction(tenant, snapshot=True) as conn:
        for low in range(start, end, copyread.RANGE):
            query = (
                "SELECT body FROM log_entries WHERE tenant_id = current_setting('plant.tenant') "
                f"AND idx >= {low} AND idx < {min(end, low + copyread.RANGE)} ORDER BY idx"
            )
            for rows in copyread.copy_batches(conn, query, [copyread.BYTEA]):
                for (body,) in rows:
                    leaf = zero.copy()
                    leaf.update(body)
                    leaf.digest()
    return time.perf_counter() - started


@contextmanager
def _phases(names: tuple[str, ...]) -> Iterator[dict[str, list[float]]]:
    """Seconds each call of these passes took while the block runs (the passes are wrapped,
    then restored): where a full audit's time goes. A name is ``module`` (its ``checked``)
    or ``module.function``, in ``shared.audit``."""
    targets = {}
    for name in names:
        module, _, function = name.partition(".")
        targets[name] = (importlib.import_module(f"shared.audit.{module}"), function or "checked")
    spent: dict[str, list[float]] = {name: [] for name in names}
    originals = {name: getattr(module, fn) for name, (module, fn) in targets.items()}

    def timed(name: str, checked: Any) -> Any:
        @functools.wraps(checked)
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return checked(*args, **kwargs)
            finally:
                spent[name].append(time.perf_counter() - started)

        return run

    for name, checked in originals.items():
        setattr(targets[name][0], targets[name][1], timed(name, checked))
    try:
        yield spent
    finally:
        for name, checked in originals.items():
            setattr(targets[name][0], targets[name][1], checked)


def _read_and_hash(tenant: str, start: int, end: int, batch: int = 5000) -> float:
    """The floor as it was: pg8000 rows, ``batch`` at a time."""
    from shared.storage.engine import database

    started = time.perf_counter()
    with database().transaction(tenant) as conn:
        for low in range(start, end, batch):
            for (body,) in conn.execute(
                text("SELECT body FROM log_entries WHERE idx >= :a AND idx < :b ORDER BY idx"),
                {"a": low, "b": min(end, low + batch)},
            ):
                hashlib.sha256(b"\x00" + bytes(body)).digest()
    return time.perf_counter() - started


def bench_audit(size: int, increment: int) -> list[dict[str, Any]]:
    from shared import audit
    from shared.security.principal import Principal

    tenant, _ = sealed_tenant(size)
    auditor = Principal("bench", tenant, frozenset({"auditor"}))

    def full() -> float:
        started = time.perf_counter()
        run, _ = audit.run(auditor, {"mode": "full"})
        took = time.perf_counter() - started
        assert run["findings"] == [], run["findings"][:3]
        return took

    def alone() -> float:
        """The same audit in one process (the entries pass not handed to workers); its
        phases are not among those reported."""
        os.environ["PLANT_AUDIT_WORKERS"] = "1"
        settings.cache_clear()
        try:
            return unphased(full)
        finally:
            del os.environ["PLANT_AUDIT_WORKERS"]
            settings.cache_clear()

    def unphased(run: Any) -> float:
        """``run()``, its passes' times left out of those reported."""
        marks = {name: len(times) for name, times in spent.items()}
        try:
            return float(run())
        finally:
            for name, times in spent.items():
                del times[marks[name] :]

    def without_map() -> float:
        """The same audit without the map check (issue 24): no feed, no replay, no nodes."""
        from shared.audit import runs

        check = runs.map_check
        runs.map_check = types.SimpleNamespace(  # type: ignore[assignment]
            Replay=lambda start: None, checked=lambda *args: None
        )
        try:
            return unphased(full)
        finally:
            runs.map_check = check

    cfg = settings()
    workers = cfg.audit_workers if size >= cfg.audit_parallel_from else 1
    names = ("entries", "heads", "map_check", *(name for name, _ in _INSIDER_PASSES))
    with _phases(names) as spent:
        prod, base, rows_floor, single, no_map = common.interleaved(
            full,
            lambda: _copy_and_hash(tenant, 0, size),
            lambda: _read_and_hash(tenant, 0, size),
            alone,
            without_map,
        )
    (peak, worker, together), (bare, _, _) = _peak_rss(tenant), _peak_rss(None)
    phases = ", ".join(
        f"{label} {statistics.median(spent[name]):.2f} s"
        for name, label in (("entries", "entries pass"), ("heads", "heads and rules"))
    )
    out = [
        common.result(
            f"full audit of {size:,} entries",
            common.side(prod, size, "entries/s", "audit.run(full)"),
            common.side(base, size, "entries/s", "binary COPY + SHA-256 every row"),
            operations=size,
            details=[
                "the same read with pg8000 rows, 5,000 a query: "
                f"median {rows_floor['median']:.2f} s (ratio "
                f"{prod['median'] / rows_floor['median']:.2f} against it)",
                (
                    f"entries and heads passes in {workers} worker processes"
                    if workers > 1
                    else "entries and heads passes in the audit's own process"
                )
                + f" (PLANT_AUDIT_WORKERS={cfg.audit_workers}, from "
                f"{cfg.audit_parallel_from:,} entries); the same audit in one process: median "
                f"{single['median']:.2f} s ({single['min']:.2f}-{single['max']:.2f})",
                f"medians of the audit's phases: {phases}",
                f"peak RSS of one full audit in a process of its own: {peak:.0f} MB "
                f"({bare:.0f} MB with the same imports and no audit: "
                f"{(peak - bare) * 1e6 / size:.0f} bytes an entry)"
                + (
                    f", its largest worker {worker:.0f} MB, the audit's processes together "
                    f"{together:.0f} MB"
                    if workers > 1
                    else ""
                )
                + "; the audit function has "
                f"{_function_memory('audit')} (terraform/main.tf)",
            ],
            targets=[
                *(
                    [
                        common.at_most("full audit at 1,000,000", prod["median"], FULL_TARGET, "s"),
                        common.at_most("peak RSS, all its processes", together, RSS_TARGET, "MB"),
                    ]
                    if size >= 1_000_000
                    else []
                ),
                common.at_most("ratio", prod["median"] / base["median"], FULL_RATIO_TARGET, "x"),
            ],
        )
    ]

    out.append(
        common.result(
            f"full audit of {size:,} entries with the map check",
            common.side(prod, size, "entries/s", "audit.run(full)"),
            common.side(no_map, size, "entries/s", "the same audit without the map check"),
            operations=size,
            details=[
                "the map check: each entry's head input handed on by the entries pass (the "
                "log read once), every map commit's root recomputed, every stored map node "
                f"compared; its own pass (commits' ends, nodes) median "
                f"{statistics.median(spent['map_check']):.2f} s"
            ],
            targets=[
                common.at_most("ratio", prod["median"] / no_map["median"], MAP_RATIO_TARGET, "x")
            ],
        )
    )
    insider = [
        f"{label} {statistics.median(spent[name]):.2f} s (audit without it "
        f"{prod['median'] - statistics.median(spent[name]):.2f} s, ratio "
        f"{prod['median'] / max(prod['median'] - statistics.median(spent[name]), 1e-9):.3f})"
        for name, label in _INSIDER_PASSES
    ]
    out.append(
        common.result(
            f"issue 22's checks in the full audit of {size:,} entries",
            common.side(prod, size, "entries/s", "audit.run(full)"),
            common.side(base, size, "entries/s", "binary COPY + SHA-256 every row"),
            operations=size,
            details=["medians of each pass: " + "; ".join(insider)],
        )
    )

    # Incremental: each repeat appends `increment` new entries (outside the timing), then
    # audits them; the floor reads and hashes the same new rows.
    eng = superuser()
    incremental, floor, verified = [], [], []
    for _ in range(common.REPEATS):
        size_now = seed.log_size(eng, tenant) or 0  # each run's report is logged after it
        seed.write_skills(eng, tenant, size_now, increment)
        started = time.perf_counter()
        run, _ = audit.run(auditor, {"mode": "incremental"})
        incremental.append(time.perf_counter() - started)
        assert run["findings"] == [], run["findings"][:3]
        verified.append(run.get("summary", {}).get("entries_verified"))
        floor.append(_copy_and_hash(tenant, size_now, size_now + increment))
    eng.dispose()
    inc = common.stats(incremental)
    out.append(
        common.result(
            f"incremental audit of {increment:,} new entries (log of {size:,}+)",
            common.side(inc, increment, "entries/s", "audit.run(incremental), incl. seal"),
            common.side(
                common.stats(floor), increment, "entries/s", "binary COPY + SHA-256 the rows"
            ),
            operations=increment,
            details=[
                "includes sealing the new entries (their subtree hashes and checkpoint)",
                f"entries verified per run: {sorted(set(map(str, verified)))}",
            ],
            targets=[
                common.at_most("incremental", inc["median"], INCREMENTAL_TARGET, "s"),
                common.at_most(
                    "ratio",
                    inc["median"] / common.stats(floor)["median"],
                    INCREMENTAL_RATIO_TARGET,
                    "x",
                ),
            ],
        )
    )
    return out
