"""A full audit in parts (issue 27, decision 4): COUNT `plant audit --part` processes at once,
each with Cloud Run's CLOUD_RUN_TASK_INDEX / _COUNT / _EXECUTION set, then the merge (the
`plant audit --merge` run, in this process), against one full audit as the audit function
runs it (`audit.run(full)`, its worker processes as configured), interleaved on the same log.

On this 2-core machine the COUNT parts share two cores, so the row measures what the split
costs (each part's start-up, the parts written and read back, the merge's own passes), not
what COUNT machines would gain; one part's CPU seconds are printed beside it, as what a task
with a core of its own would take. The findings of both must be equal.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

from sqlalchemy import text

from bench import common
from bench.audit import _phases as phase_times
from bench.db import superuser
from bench.proofs import sealed_tenant

COUNT = 4
_PLANT = "import sys; from shared import cli; sys.exit(cli.main())"


def _cpu_of_children() -> float:
    """CPU seconds (user + system) of this process's children that have ended."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _parts(tenant: str, execution: str, cpu: list[float]) -> float:
    """COUNT part processes started at once; wall seconds until the last has written (their
    CPU seconds appended to ``cpu``)."""
    before = _cpu_of_children()
    started = time.perf_counter()
    running = [
        subprocess.Popen(
            [sys.executable, "-c", _PLANT, "audit", "--tenant", tenant, "--part", "--as", "bench"],
            env={
                **os.environ,
                "PLANT_AUDIT_WORKERS": "1",
                "CLOUD_RUN_TASK_INDEX": str(index),
                "CLOUD_RUN_TASK_COUNT": str(COUNT),
                "CLOUD_RUN_EXECUTION": execution,
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(COUNT)
    ]
    for process in running:
        _, err = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"a part failed: {err[-500:]}")
    took = time.perf_counter() - started
    cpu.append(_cpu_of_children() - before)
    return took


def bench_parts(size: int) -> list[dict[str, Any]]:
    from shared import audit
    from shared.audit import parts
    from shared.config import settings
    from shared.security.principal import Principal
    from shared.tlog import anchors

    tenant, _ = sealed_tenant(size)
    eng = superuser()
    with eng.begin() as conn:  # the seal wrote the tree after the seeding's ANALYZE
        conn.execute(text("ANALYZE log_nodes, log_receipts"))
    eng.dispose()
    auditor = Principal("bench", tenant, frozenset({"auditor"}))
    findings: dict[str, list[Any]] = {"full": [], "merged": []}
    split: dict[str, list[float]] = {k: [] for k in ("parts", "merge", "covered", "cpu", "bytes")}

    passes = ("entries", "heads", "nodes", "map_check", "receipts")
    by_side: dict[str, dict[str, list[float]]] = {"full": {}, "merge": {}}

    def phases(side: str, seen: dict[str, list[float]], before: dict[str, int]) -> None:
        """Seconds each pass took in the run just ended, kept for its side."""
        for name in passes:
            by_side[side].setdefault(name, []).append(sum(seen[name][before[name] :]))

    def full() -> float:
        before = {name: len(spent[name]) for name in passes}
        started = time.perf_counter()
        run, _ = audit.run(auditor, {"mode": "full"})
        took = time.perf_counter() - started
        phases("full", spent, before)
        findings["full"].append(run["findings"])
        return took

    def in_parts() -> float:
        execution = f"bench-{uuid.uuid4().hex[:8]}"
        wrote = _parts(tenant, execution, split["cpu"])
        before = {name: len(spent[name]) for name in passes}
        started = time.perf_counter()
        run, _ = parts.merge(auditor, execution, COUNT)
        merged = time.perf_counter() - started
        phases("merge", spent, before)
        findings["merged"].append(run["findings"])
        split["parts"].append(wrote)
        split["merge"].append(merged)
        split["covered"].append(run["summary"]["parts"]["entries"])
        store = anchors.anchor_store(settings())
        names = [parts.object_name(tenant, execution, i) for i in range(COUNT)]
        split["bytes"].append(sum(len(store.get_object(n) or "") for n in names))
        return wrote + merged

    with phase_times(passes) as spent:
        prod, base = common.interleaved(in_parts, full)
    shown = "; ".join(
        f"{name} {statistics.median(by_side['full'][name]):.2f} / "
        f"{statistics.median(by_side['merge'][name]):.2f} s"
        for name in passes
    )
    differing = sum(f != findings["full"][0] for f in findings["full"] + findings["merged"])
    equal = differing == 0
    parts_s, merge_s = common.stats(split["parts"]), common.stats(split["merge"])
    cpu = common.stats(split["cpu"])["median"]
    return [
        common.result(
            f"full audit of {size:,} entries in {COUNT} parts + merge",
            common.side(prod, size, "entries/s", f"{COUNT} x plant audit --part, then merge"),
            common.side(base, size, "entries/s", "one full audit (audit.run(full))"),
            operations=size,
            details=[
                f"parts (all {COUNT} at once, wall): median {parts_s['median']:.2f} s "
                f"({parts_s['min']:.2f}-{parts_s['max']:.2f}); merge: median "
                f"{merge_s['median']:.2f} s ({merge_s['min']:.2f}-{merge_s['max']:.2f})",
                f"merge / one full audit: {merge_s['median'] / base['median']:.2f}; CPU of "
                f"one part (process start-up included; what a task of its own would take, "
                f"the database's share aside): median {cpu / COUNT:.2f} s",
                f"medians of the passes, one full audit / the merge: {shown}",
                f"the {COUNT} parts in the anchor store: {max(split['bytes']) / 1e6:.1f} MB "
                f"({max(split['bytes']) / size:.0f} bytes an entry, DSSE JSON); "
                f"entries the parts gave the merge: {sorted(set(split['covered']))} "
                "(the rest, the previous runs' reports, read by the merge)",
                f"findings equal (parts + merge vs full audit, every repeat): {equal} "
                f"({len(findings['full'][0])} findings)",
            ],
            targets=[common.at_most("runs whose findings differ", differing, 0, "runs")],
        )
    ]
