"""Side-by-side benchmarks: the product against its own floor, in the same run.

`make bench` (or `python -m bench.run [--quick] [--only name,name]`) starts an embedded
PostgreSQL unless DATABASE_URL is set, creates a fresh migrated database on it, runs each
benchmark with its baseline, prints the machine and the results table, and appends the run to
bench/results.json and bench/results.md. Headline: ratio = product / baseline (time for the
same work); absolute figures beside it. Every figure is the median of the repeats (5, or 3
with --quick), with min and max. Fixture data comes from bench/seed.py (fixed seed).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _append(quick: bool) -> list[dict[str, Any]]:
    from bench.append import bench_append

    return [
        bench_append(1, 50 if quick else 300),
        bench_append(8, 20 if quick else 100),
    ]


def _append_proxy(quick: bool) -> list[dict[str, Any]]:
    from bench.append import bench_append_processes, bench_append_proxied

    # 150 per writer: 4,800 appends a repeat, seconds of sustained load, not a sub-second burst.
    return [
        bench_append_proxied(32, 5 if quick else 150),
        bench_append_processes(4, 8, 5 if quick else 150),
    ]


def _http(quick: bool) -> list[dict[str, Any]]:
    from bench.http import bench_http

    return bench_http(single=100 if quick else 500, clients=16, per_client=20 if quick else 100)


def _bulk(quick: bool) -> list[dict[str, Any]]:
    from bench.bulk import bench_bulk

    return [bench_bulk(1_000 if quick else 10_000)]


def _proofs(quick: bool) -> list[dict[str, Any]]:
    from bench.proofs import bench_proofs

    return bench_proofs(20_000 if quick else 1_000_000, 200 if quick else 2_000)


def _current_proofs(quick: bool) -> list[dict[str, Any]]:
    from bench.current_proofs import bench_current_proofs

    if quick:
        return bench_current_proofs(20_000, 2_000, 200)
    return bench_current_proofs(1_000_000, 10_000, 2_000)


def _audit(quick: bool) -> list[dict[str, Any]]:
    from bench.audit import bench_audit

    return bench_audit(20_000 if quick else 1_000_000, 2_000 if quick else 10_000)


def _parts(quick: bool) -> list[dict[str, Any]]:
    from bench.parts import bench_parts

    return bench_parts(20_000 if quick else 1_000_000)


def _bulk_large(quick: bool) -> list[dict[str, Any]]:
    from bench.bulk import bench_bulk_large

    return [bench_bulk_large(20_000 if quick else 1_000_000, 1_000 if quick else 10_000)]


def _receipts(quick: bool) -> list[dict[str, Any]]:
    from bench.receipts import bench_append_receipts, bench_bulk_receipts, bench_http_receipts

    return [
        bench_append_receipts(1, 50 if quick else 300),
        bench_append_receipts(8, 20 if quick else 100),
        bench_http_receipts(1, 50 if quick else 300),
        bench_http_receipts(8, 20 if quick else 100),
        bench_bulk_receipts(1_000 if quick else 10_000),
    ]


def _export(quick: bool) -> list[dict[str, Any]]:
    from bench.export import bench_export, bench_pdf

    count = 10_000 if quick else 100_000
    return [bench_export(count), bench_pdf(count, full=True), bench_pdf(count, full=False)]


def _cascade(quick: bool) -> list[dict[str, Any]]:
    from bench.cascade import bench_cascade

    return [bench_cascade(100 if quick else 1_000)]


def _coldstart(quick: bool) -> list[dict[str, Any]]:
    from bench.coldstart import bench_coldstart

    return bench_coldstart()


def _crypto(quick: bool) -> list[dict[str, Any]]:
    from bench.crypto import bench_certificates, bench_checkpoint

    count = 200 if quick else 1_000
    return [bench_checkpoint(count), *bench_certificates(count)]


def _embeddings(quick: bool) -> list[dict[str, Any]]:
    from bench.embeddings import bench_embeddings
    from bench.similar import bench_create_cost, bench_search

    # the creates first: they must not load the model, which the others do
    return [
        bench_create_cost(200 if quick else 1_000),
        bench_embeddings(500 if quick else 2_000),
        bench_search(10_000 if quick else 100_000, 100 if quick else 300),
    ]


def _witness(quick: bool) -> list[dict[str, Any]]:
    from bench.witness import bench_tiles, bench_witness_seal

    return [bench_tiles(300 if quick else 2_000), *bench_witness_seal(20 if quick else 100)]


# In run order: proofs before audit (the incremental audit appends to the shared tenant), and
# bulk_large after both (it adds its batches to that tenant).
BENCHMARKS: dict[str, Callable[[bool], list[dict[str, Any]]]] = {
    "append": _append,
    "append_proxy": _append_proxy,
    "http": _http,
    "bulk": _bulk,
    "receipts": _receipts,
    "export": _export,
    "proofs": _proofs,
    "audit": _audit,
    "parts": _parts,
    "current_proofs": _current_proofs,
    "bulk_large": _bulk_large,
    "cascade": _cascade,
    "coldstart": _coldstart,
    "crypto": _crypto,
    "embeddings": _embeddings,
    "witness": _witness,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, 3 repeats")
    parser.add_argument(
        "--only", default="", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}"
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    names = [n for n in BENCHMARKS if n in names]

    from bench import common, db, report

    common.REPEATS = 3 if args.quick else 5
    db.setup_database()
    info = report.machine()
    print(report.machine_line(info), flush=True)
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    for name in names:
        began = time.perf_counter()
        print(f"-- {name} ...", flush=True)
        try:
            rows = BENCHMARKS[name](args.quick)
        except Exception as exc:  # one broken benchmark must not lose the others' results
            traceback.print_exc()
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            rows = [common.result(f"{name}: FAILED", None, None, skipped=reason[:300])]
        for r in rows:
            results.append(r)
            print("   " + report.table([r])[-1], flush=True)
        print(f"   ({time.perf_counter() - began:.0f} s)", flush=True)
    run = {
        "machine": info,
        "quick": args.quick,
        "repeats": common.REPEATS,
        "only": names,
        "seconds": round(time.perf_counter() - started),
        "results": results,
    }
    print("\n".join(report.write(run)))


if __name__ == "__main__":
    main()
