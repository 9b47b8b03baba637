"""Cold starts: from starting ``functions-framework --target=<name>`` (as Cloud Functions does,
with terraform's THREADS and pool size) to the first 200 from its /healthz (which queries the
database), for each function; and the import time of main.py (``python -X importtime``, the
sum of every module's own time), with the cloud-only modules that the local path imported.
Baseline: a process that imports flask and sqlalchemy and exits."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import common
from bench.http import SHIPPED_ENV, free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
IMPORT_TARGET = 0.400  # seconds for `import main` (issue #7)
CLOUD_PREFIXES = ("google", "cloud_sql", "grpc")


def _env() -> dict[str, str]:
    return {**os.environ, **SHIPPED_ENV}


def _first_200(name: str) -> float:
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(BIN / "functions-framework"), f"--target={name}", "--source=main.py",
         f"--port={port}", "--host=127.0.0.1"],
        cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_healthy(proc, port, "/healthz")
        return time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _process(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), check=True)
    return time.perf_counter() - started


_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def import_time(code: str) -> tuple[float, dict[str, float]]:
    """(total seconds of every module's own import time, seconds per top-level package)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=ROOT, env=_env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    total, by_package = 0, {}
    for line in done.stderr.splitlines():
        match = _LINE.match(line)
        if match:
            own = int(match.group(1))
            total += own
            package = match.group(4).split(".")[0]
            by_package[package] = by_package.get(package, 0) + own / 1e6
    return total / 1e6, by_package


def cloud_modules() -> list[str]:
    code = (
        "import main, sys; print('\\n'.join(sorted(m for m in sys.modules "
        f"if m.startswith({CLOUD_PREFIXES!r}))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return [m for m in done.stdout.split() if m]


def bench_coldstart() -> list[dict[str, Any]]:
    import main

    floor, *firsts = common.interleaved(
        lambda: _process("import flask, sqlalchemy"),
        *(lambda name=name: _first_200(name) for name in main.FUNCTIONS),
    )
    baseline = common.side(floor, label="python -c 'import flask, sqlalchemy'")
    out = [
        common.result(
            f"cold start: {name} (process start -> first 200 /healthz)",
            common.side(first, label=f"functions-framework --target={name}"),
            baseline,
            operations=1,
        )
        for name, first in zip(main.FUNCTIONS, firsts, strict=True)
    ]
    imports: list[tuple[float, dict[str, float]]] = []

    def import_main() -> float:
        imports.append(import_time("import main"))
        return imports[-1][0]

    prod, base_imports = common.interleaved(
        import_main, lambda: import_time("import flask, sqlalchemy")[0]
    )
    heaviest = sorted(imports[-1][1].items(), key=lambda kv: -kv[1])[:8]
    slowest = ", ".join(f"{name} {t * 1000:.0f} ms" for name, t in heaviest)
    cloud = cloud_modules()
    # functions_framework itself imports its google.cloud.functions context classes; any
    # other google.* / cloud_sql* / grpc module would be a cloud client on the local path.
    clients = [
        m
        for m in cloud
        if m not in ("google", "google.cloud") and not m.startswith("google.cloud.functions")
    ]
    out.append(
        common.result(
            "import main (python -X importtime, sum of self times)",
            common.side(prod, label="import main"),
            common.side(base_imports, label="import flask, sqlalchemy"),
            operations=1,
            details=[
                f"own import time by package: {slowest}",
                "cloud client modules imported on the local path: "
                + (", ".join(clients) or "none")
                + f" (every google.*/cloud_sql*/grpc module: {', '.join(cloud) or 'none'})",
            ],
            targets=[common.at_most("import main", prod["median"], IMPORT_TARGET, "s")],
        )
    )
    return out
