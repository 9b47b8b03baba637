"""The machine a run was made on, and the results files: bench/results.json keeps every run
(newest last); bench/results.md shows them as tables (newest first)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import common

HERE = Path(__file__).resolve().parent
JSON = HERE / "results.json"
MARKDOWN = HERE / "results.md"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    from bench import db

    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "postgresql": db.server_version(),
        "embedded_postgresql": not db.external,
        "sqlalchemy": _version("SQLAlchemy"),
        "pg8000": _version("pg8000"),
        "gunicorn": _version("gunicorn"),
        "functions-framework": _version("functions-framework"),
        "cryptography": _version("cryptography"),
        "pymerkle": _version("pymerkle"),
        "load_average": os.getloadavg()[0],
        "sha256_per_s": _cpu_reference(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _cpu_reference() -> float:
    """SHA-256 of 460 bytes per second on one core, in this process: how fast this VM's CPU
    is right now (../shared/FIELD-NOTES.md measured 1.7 million/s on this machine type), so
    runs on a slower or busier VM can be told apart from slower code."""
    data, count = b"x" * 460, 200_000
    started = time.perf_counter()
    for _ in range(count):
        hashlib.sha256(data).digest()
    return count / (time.perf_counter() - started)


def machine_line(m: dict[str, Any]) -> str:
    where = "embedded" if m.get("embedded_postgresql") else "DATABASE_URL's server"
    return (
        f"{m['cpu']}, {m['cores']} cores, {m.get('memory_gib')} GiB; Python {m['python']}; "
        f"PostgreSQL {m['postgresql']} ({where}); SQLAlchemy {m['sqlalchemy']}; "
        f"pg8000 {m['pg8000']}; gunicorn {m.get('gunicorn')}; "
        f"functions-framework {m.get('functions-framework')}; pymerkle {m.get('pymerkle')}; "
        f"1-minute load average at start {m.get('load_average', 0):.2f}; "
        f"CPU reference at start: {m.get('sha256_per_s', 0) / 1e6:.2f} million SHA-256 "
        "of 460 B per second on one core"
    )


def _side_text(s: dict[str, Any] | None, skipped: str | None) -> str:
    if s is None:
        return f"not available: {skipped}" if skipped else "not available"
    label = f"{s['label']}: " if s.get("label") else ""
    spread = f"{_t(s['min'])}-{_t(s['max'])}"
    if s.get("rate") is not None:
        return f"{label}{s['rate']:,.0f} {s['unit']} (median {_t(s['median'])}, {spread})"
    return f"{label}median {_t(s['median'])} ({spread})"


def _t(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 0.01:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds * 1000:.2f} ms"


def table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| benchmark | ratio (product/baseline time) | product | baseline | details | target |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = f"{r['ratio']:.2f}" if r.get("ratio") is not None else "n/a"
        targets = "; ".join(common.target_text(t) for t in r.get("targets", [])) or "-"
        details = "; ".join(r.get("details", [])) or "-"
        lines.append(
            f"| {r['name']} | {ratio} | {_side_text(r['product'], r.get('skipped'))} | "
            f"{_side_text(r['baseline'], r.get('skipped'))} | {details} | {targets} |"
        )
    return lines


def _runs() -> list[dict[str, Any]]:
    if not JSON.exists():
        return []
    data = json.loads(JSON.read_text())
    if isinstance(data, dict) and "runs" in data:
        return list(data["runs"])
    if isinstance(data, dict) and "results" in data:  # the first format: one run
        return [data]
    return []


def write(run: dict[str, Any]) -> list[str]:
    """Append ``run`` to results.json and rewrite results.md; return this run's table."""
    runs = [*_runs(), run]
    JSON.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    out = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`python -m bench.run`); newest run first. Ratio = product "
        "time / baseline time for the same work in the same run (lower is better); every "
        "figure is the median of the repeats, with min-max.",
    ]
    for r in reversed(runs):
        m = r.get("machine", {})
        kind = "quick" if r.get("quick") else "full"
        out += [
            "",
            f"## {m.get('time', '?')} ({kind} run, {r.get('repeats')} repeats)",
            "",
            machine_line(m) if "cpu" in m else str(m),
            "",
            *table(r["results"]),
        ]
    MARKDOWN.write_text("\n".join(out) + "\n")
    return table(run["results"])
