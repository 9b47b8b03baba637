"""Where a bulk create's time goes, part by part (issue 27, decision 2): ``python -m
bench.bulk_parts [--size N] [--repeats R]`` runs ``batches.create_batch`` of N seeded skills
(10,000 unless told) R times on a fresh database (embedded unless DATABASE_URL is set), into
a new tenant or, with ``--into M``, a seeded tenant of M skills, and
prints each part's wall time and share of the batch: the client's work before the
transaction (input checks, ids, keys), the staging COPYs, each statement the server runs
inside ``plant_batch_items`` and ``plant_batch_append`` (the key check, the tags, the
entries, the heads with their trigger), the waits for the encoding thread, and what follows
the last append (receipt, commit, response). The server's statements are timed by
``auto_explain`` (nested statements, durations only, sent to the client as notices), which
the bench's login may load because it is the server's superuser; the batch itself runs as
the application role, as in the product. Not a benchmark row: the parts' times, not a ratio
to a floor."""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# A server statement's part: the first words of its text (auto_explain's "Query Text").
_SERVER_PARTS = (
    ("SELECT DISTINCT ON", "server: key check (every item at once)"),
    ("INSERT INTO entity_tags", "server: tags (entity_tags rows)"),
    ("INSERT INTO log_entries", "server: entries"),
    ("INSERT INTO entity_heads", "server: heads (and their tags trigger)"),
)
_DURATION = re.compile(r"duration: ([\d.]+) ms")
_AUTO_EXPLAIN = (
    "LOAD 'auto_explain'",
    "SET auto_explain.log_min_duration = 0",
    "SET auto_explain.log_nested_statements = on",
    "SET auto_explain.log_level = 'notice'",
)


def _server_parts(notices: list[Any]) -> dict[str, float]:
    """Seconds per server part, from auto_explain's notices."""
    parts: dict[str, float] = defaultdict(float)
    for notice in notices:
        message = notice.get(b"M", b"") if isinstance(notice, dict) else notice
        message = message.decode() if isinstance(message, bytes) else str(message)
        found = _DURATION.search(message)
        query = message.split("Query Text:", 1)[-1].strip()
        for start, part in _SERVER_PARTS:
            if found and query.startswith(start):
                parts[part] += float(found.group(1)) / 1000
    return parts


@contextmanager
def _patched(owner: Any, name: str, wrap: Callable[[Any], Any]) -> Iterator[None]:
    real = getattr(owner, name)
    setattr(owner, name, wrap(real))
    try:
        yield
    finally:
        setattr(owner, name, real)


def one_batch(size: int, tenant: str | None = None, start: int = 0) -> dict[str, float]:
    """One timed batch into ``tenant`` (a new one unless named) of the seeded skills from
    number ``start`` on: seconds per part, and ``total``."""
    from bench import seed
    from shared.config import APP_ROLE
    from shared.registry import batches
    from shared.security.principal import Principal
    from shared.storage import ledger, staging

    parts: dict[str, float] = defaultdict(float)
    marks: dict[str, float] = {}
    notices: list[Any] = []

    def versions(real: Any) -> Any:
        def run(conn: Any, *args: Any, **kwargs: Any) -> Any:
            marks["writing"] = time.perf_counter()
            conn.exec_driver_sql("RESET ROLE")
            for statement in _AUTO_EXPLAIN:
                conn.exec_driver_sql(statement)
            conn.exec_driver_sql(f"SET ROLE {APP_ROLE}")
            raw = conn.connection.dbapi_connection
            raw.notices.clear()
            marks["written"] = time.perf_counter()  # the settings above are not the batch's
            try:
                return real(conn, *args, **kwargs)
            finally:
                notices.extend(raw.notices)
                marks["appended"] = time.perf_counter()

        return run

    def copies(real: Any) -> Any:
        def run(conn: Any, table: str, *args: Any) -> None:
            started = time.perf_counter()
            real(conn, table, *args)
            parts[f"client: COPY into {table}"] += time.perf_counter() - started

        return run

    bodies = seed.skill_bodies(seed.SEED, size, start=start)
    tenant = tenant or f"parts-{uuid.uuid4().hex[:8]}"
    author = Principal("bench", tenant, frozenset({"author"}))
    with _patched(ledger, "create_versions", versions), _patched(staging, "copy_in", copies):
        started = time.perf_counter()
        batches.create_batch(author, "skills", bodies, "bench-parts")
        ended = time.perf_counter()
    settings = marks["written"] - marks["writing"]
    total = ended - started - settings
    parts["client: before the transaction's writes (input checks, ids, keys)"] = (
        marks["writing"] - started
    )
    parts.update(_server_parts(notices))
    appending = marks["appended"] - marks["written"]
    known = sum(v for k, v in parts.items() if k.startswith(("server", "client: COPY")))
    parts["rest of the appends (waits for encoding, round trips, open, close)"] = appending - known
    parts["after the last append (receipt, commit, response)"] = ended - marks["appended"]
    parts["total"] = total
    return dict(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--into",
        type=int,
        default=0,
        help="batch into a seeded tenant of this many skills (kept across runs with "
        "PLANT_BENCH_KEEP), not a new one: what a large tenant adds",
    )
    args = parser.parse_args(argv)
    from bench import seed
    from bench.db import setup_database, superuser
    from bench.report import _cpu_reference

    setup_database()
    tenant = None
    if args.into:
        tenant = seed.seeded_tenant("parts", args.into)
    cpu = _cpu_reference()
    # into a seeded tenant: skills numbered past its own and earlier runs' (each batch adds
    # as many entries as items, so its log size is past every number used)
    taken = (seed.log_size(superuser(), tenant) or 0) if tenant else 0
    runs = [one_batch(args.size, tenant, taken + k * args.size) for k in range(args.repeats)]
    total = statistics.median(r["total"] for r in runs)
    print(
        f"bulk create of {args.size:,} skills, {args.repeats} batches: median {total:.3f} s; "
        f"CPU reference {cpu / 1e6:.2f} -> {_cpu_reference() / 1e6:.2f} million SHA-256/s; "
        f"1-minute load {os.getloadavg()[0]:.2f}"
    )
    names = [k for k in runs[0] if k != "total"]
    for name in sorted(names, key=lambda k: -statistics.median(r.get(k, 0.0) for r in runs)):
        median = statistics.median(r.get(name, 0.0) for r in runs)
        print(f"  {median:7.3f} s  {100 * median / total:5.1f} %  {name}")


if __name__ == "__main__":
    main()
