"""CSV export of N entities: ``GET /export/report?format=csv`` streamed from the real export
function (``functions-framework --target=export``, terraform's settings) to a client that
writes it to a file, against ``COPY (SELECT <the same columns>) TO STDOUT (FORMAT csv)`` of the
same rows by a plain pg8000 process. Memory: each serving process's peak RSS (VmHWM, read from
/proc after the last repeat; it covers start-up and every repeat)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import common, seed
from bench.http import SHIPPED_ENV, free_port, server

RSS_TARGET_MB = 200

# The report's CSV columns (shared/evidence/reports.py CSV_COLUMNS), computed by PostgreSQL.
_COPY = """
COPY (
  SELECT h.kind AS entity_type, h.entity_id AS id, h.name, h.version, h.status,
         'sha256:' || encode(e.digest, 'hex') AS digest, h.log_index,
         j #>> '{constitutional_alignment,certification,certified_version}',
         j #>> '{constitutional_alignment,certification,certifier}',
         j #>> '{constitutional_alignment,certification,certified_at}',
         j #>> '{constitutional_alignment,certification,certificate_digest}',
         (SELECT count(*) FROM jsonb_array_elements(j #> '{constitutional_alignment,rule_results}')
           AS r WHERE r ->> 'result' = 'pass') AS rules_passed,
         (SELECT count(*) FROM jsonb_array_elements(j #> '{constitutional_alignment,rule_results}')
           AS r WHERE r ->> 'result' <> 'pass') AS rules_failed
  FROM entity_heads h
  JOIN log_entries e ON e.tenant_id = h.tenant_id AND e.idx = h.log_index
  CROSS JOIN LATERAL (SELECT convert_from(e.body, 'UTF8')::jsonb AS j) AS doc
  WHERE h.tenant_id = '{tenant}'
  ORDER BY h.first_index
) TO STDOUT WITH (FORMAT csv, HEADER)
"""


def _hwm_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _copy_child(tenant: str, out: str) -> None:
    """Run in its own process: COPY the rows to ``out``; print seconds and peak RSS."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from shared.storage.urls import pg8000_url

    assert tenant.replace("-", "").isalnum()
    engine = create_engine(pg8000_url(os.environ["DATABASE_URL"]), poolclass=NullPool)
    raw = engine.raw_connection()
    raw.cursor().execute("SET statement_timeout = '300s'")  # never hang the whole suite
    started = time.perf_counter()
    with open(out, "wb") as handle:
        raw.cursor().execute(_COPY.replace("{tenant}", tenant), stream=handle)
    took = time.perf_counter() - started
    raw.close()
    print(json.dumps({"seconds": took, "hwm_mb": _hwm_mb()}))


def _download(port: int, token: str, out: Path, fmt: str = "csv") -> tuple[float, int, int]:
    """Stream the report to ``out``: (seconds, bytes, lines)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    conn.request("GET", f"/report?format={fmt}", headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"export: {response.status} {response.read()[:500]!r}")
    size = lines = 0
    with out.open("wb") as handle:
        while chunk := response.read(1 << 16):
            handle.write(chunk)
            size += len(chunk)
            lines += chunk.count(b"\n")
    took = time.perf_counter() - started
    conn.close()
    return took, size, lines


def bench_export(count: int) -> dict[str, Any]:
    from shared.config import settings
    from shared.security.local_tokens import LocalTokens

    tenant = seed.seeded_tenant("exp", count)
    folder = Path(tempfile.mkdtemp(prefix="plant-bench-export-"))
    token = LocalTokens.from_settings(settings()).issue("bench", tenant, ["auditor"], ttl=3600)
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "functions-framework"), "--target=export",
        "--source=main.py", f"--port={port}", "--host=127.0.0.1",
    ]  # fmt: skip
    product_out = folder / "report.csv"
    runs: list[tuple[float, int, int]] = []
    failure = None
    try:
        with server(command, port, "/healthz", **SHIPPED_ENV) as proc:
            for _ in range(common.REPEATS):
                runs.append(_download(port, token, product_out))
            product_hwm = _hwm_mb(proc.pid)
        rows = runs[-1][2] - 1  # less the header line
        if rows != count:
            raise RuntimeError(f"the export has {rows} rows, expected {count}")
    except RuntimeError as exc:  # the product failed: say why, still measure the floor
        failure = _reason(str(exc))
        print(f"   export failed: {exc}", flush=True)

    base_times, base_hwm = [], 0.0
    baseline_out = folder / "copy.csv"
    for _ in range(common.REPEATS):
        done = subprocess.run(
            [sys.executable, "-c", f"from bench.export import _copy_child; "
             f"_copy_child({tenant!r}, {str(baseline_out)!r})"],
            cwd=Path(__file__).resolve().parents[1], env=dict(os.environ),
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        report = json.loads(done.stdout.strip().splitlines()[-1])
        base_times.append(report["seconds"])
        base_hwm = max(base_hwm, report["hwm_mb"])
    baseline_bytes = baseline_out.stat().st_size
    for path in (product_out, baseline_out):
        path.unlink(missing_ok=True)
    folder.rmdir()
    base = common.side(common.stats(base_times), count, "rows/s", "COPY (SELECT ...) TO STDOUT")
    if failure is not None:
        return common.result(
            f"CSV export of {count:,} entities",
            None,
            base,
            operations=count,
            details=[f"COPY process peak RSS {base_hwm:.0f} MB"],
            targets=[common.at_most("peak RSS", None, RSS_TARGET_MB, "MB")],
            skipped=f"the export failed after {len(runs)} run(s): {failure}",
        )
    product_bytes = runs[-1][1]
    prod = common.stats([r[0] for r in runs])
    return common.result(
        f"CSV export of {count:,} entities",
        common.side(prod, count, "rows/s", "GET /export/report?format=csv"),
        base,
        operations=count,
        details=[
            f"peak RSS: export server {product_hwm:.0f} MB (start-up and {common.REPEATS} "
            f"exports), COPY process {base_hwm:.0f} MB",
            f"output {product_bytes / 1e6:.1f} MB (COPY {baseline_bytes / 1e6:.1f} MB)",
        ],
        targets=[common.at_most("peak RSS", product_hwm, RSS_TARGET_MB, "MB")],
    )


PDF_RATE_TARGET = 5_000  # entities/s (issue 26)


def bench_pdf(count: int, full: bool) -> dict[str, Any]:
    """The signed PDF of the same ``count`` entities beside their CSV, each from its own
    export server (peak RSS of each), interleaved. ``full``: PLANT_EXPORT_PDF_MAX_ENTITIES =
    count, every entity in the table; else the shipped size, the summary edition above it."""
    from shared.config import settings
    from shared.security.local_tokens import LocalTokens

    tenant = seed.seeded_tenant("exp", count)
    folder = Path(tempfile.mkdtemp(prefix="plant-bench-pdf-"))
    token = LocalTokens.from_settings(settings()).issue("bench", tenant, ["auditor"], ttl=3600)
    env = dict(SHIPPED_ENV)
    if full:
        env["PLANT_EXPORT_PDF_MAX_ENTITIES"] = str(count)
    hwm: dict[str, float] = {}
    times: dict[str, list[float]] = {"pdf": [], "csv": []}
    sizes: dict[str, int] = {}
    for fmt in ("pdf", "csv"):
        port = free_port()
        command = [
            str(Path(sys.executable).parent / "functions-framework"), "--target=export",
            "--source=main.py", f"--port={port}", "--host=127.0.0.1",
        ]  # fmt: skip
        with server(command, port, "/healthz", **env) as proc:
            for _ in range(common.REPEATS):
                took, size, _ = _download(port, token, folder / f"report.{fmt}", fmt)
                times[fmt].append(took)
                sizes[fmt] = size
            hwm[fmt] = _hwm_mb(proc.pid)
        (folder / f"report.{fmt}").unlink(missing_ok=True)
    folder.rmdir()
    pdf, csv_ = common.stats(times["pdf"]), common.stats(times["csv"])
    edition = "full table" if full else "shipped size (summary edition above 5,000)"
    rate = count / pdf["median"]
    return common.result(
        f"PDF report of {count:,} entities, {edition}",
        common.side(pdf, count, "entities/s", "GET /export/report?format=pdf (signed)"),
        common.side(csv_, count, "entities/s", "GET /export/report?format=csv, same entities"),
        operations=count,
        details=[
            f"peak RSS: PDF server {hwm['pdf']:.0f} MB, CSV server {hwm['csv']:.0f} MB "
            f"(start-up and {common.REPEATS} exports each)",
            f"output: PDF {sizes['pdf'] / 1e6:.1f} MB, CSV {sizes['csv'] / 1e6:.1f} MB",
        ],
        targets=[
            common.at_most("PDF peak RSS", hwm["pdf"], RSS_TARGET_MB, "MB"),
            common.at_least("PDF entities/s", rate, PDF_RATE_TARGET, "entities/s"),
        ],
    )


def _reason(message: str) -> str:
    """The first line of a failure, and the database error behind it if the server said."""
    lines = message.splitlines()
    first = lines[0][:120]
    for line in lines:
        if "'M': " in line:
            return first + "; server: " + line.split("'M': ", 1)[1].split("'")[1]
    for line in reversed(lines):
        if line.startswith(("shared.errors.", "sqlalchemy.exc.")):
            return first + "; server: " + line[:200]
    return first
