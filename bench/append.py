"""Appends: ``shared.registry.writes.create`` (validation, canonical bytes, digests, the
tenant's log index, the head) against a plain INSERT of the same canonical bytes into a table
with no integrity, same driver, same pool, same database; directly and through a latency proxy."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from sqlalchemy import text

from bench import common, proxy, seed
from bench.db import plain_table

PER_TENANT_TARGET = 1_000  # appends/s per tenant log at 32 writers (issue #7)
RATIO_TARGET = 1.3  # product / plain INSERT time at 1 writer (issue #27, decision 6; #7: 1.5)
SUSTAINED_TARGET = 1_000  # appends/s at 8 writers (issue #7)


def _canonical_documents(bodies: list[dict[str, Any]]) -> list[bytes]:
    """What the registry would store for these bodies (outside any timing)."""
    from shared.integrity import canonical
    from shared.registry import documents
    from shared.registry.documents import Change
    from shared.registry.versions import passed_rules
    from shared.rules import inputs
    from shared.rules.kinds import KINDS

    kind = KINDS["skills"]
    out = []
    for i, body in enumerate(bodies):
        fields, _, _ = inputs.check_write(kind, body, current=None)
        change = Change(
            "bench", str(uuid.UUID(int=i)), 1, "draft", canonical.now_text(),
            canonical.now_text(), None, "created", "bench", f"r{i}", "create", passed_rules(kind),
        )  # fmt: skip
        out.append(documents.encode(documents.build(kind, fields, change)).body)
    return out


def _run(writers: int, per_writer: int) -> tuple[dict[str, float], dict[str, float]]:
    from shared.registry import writes
    from shared.security.principal import Principal
    from shared.storage.engine import database

    bodies = seed.skill_bodies(seed.SEED, writers * per_writer)
    stored = _canonical_documents(bodies)
    plain_table("bench_plain")

    def product() -> float:
        author = Principal("bench", f"b-{uuid.uuid4().hex[:10]}", frozenset({"author"}))

        def work(n: int) -> None:
            for i in range(n * per_writer, (n + 1) * per_writer):
                writes.create(author, "skills", bodies[i], f"bench-{i}")

        return common.threads(work, writers)

    def baseline() -> float:
        engine = database().engine

        def work(n: int) -> None:
            for i in range(n * per_writer, (n + 1) * per_writer):
                _plain_insert(engine, stored[i])

        return common.threads(work, writers)

    database().ping()  # the pool exists before the first timing
    counter = Principal("bench", f"t-{uuid.uuid4().hex[:10]}", frozenset({"author"}))
    trips = {
        "product": _round_trips(lambda i: writes.create(counter, "skills", bodies[i], "trips")),
        "baseline": _round_trips(lambda i: _plain_insert(database().engine, stored[i])),
    }
    prod_cpu, base_cpu = [], []
    prod, base = common.interleaved(
        lambda: common.with_cpu(product, prod_cpu), lambda: common.with_cpu(baseline, base_cpu)
    )
    total = writers * per_writer * common.REPEATS
    prod["cpu_per_op"] = sum(prod_cpu) / total
    base["cpu_per_op"] = sum(base_cpu) / total
    prod["round_trips"], base["round_trips"] = trips["product"], trips["baseline"]
    return prod, base


def _plain_insert(engine: Any, body: bytes) -> None:
    """The floor's append: the stored bytes into a plain table, in a transaction of its own
    (the driver's BEGIN, the INSERT, COMMIT)."""
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO bench_plain (body) VALUES (:b)"), {"b": body})


def _round_trips(fn: Any) -> int:
    """Round trips to the database that ``fn(1)`` makes after ``fn(0)`` (whose connection may
    be pinged after idling), counted at the socket: each flush of a pg8000 connection is one
    burst the client then waits on. Outside every timing."""
    from pg8000 import core

    fn(0)
    counted = [0]
    flush = core._flush

    def counting(sock: Any) -> None:
        counted[0] += 1
        flush(sock)

    core._flush = counting
    try:
        fn(1)
    finally:
        core._flush = flush
    return counted[0]


def cpu_detail(prod: dict[str, Any], base: dict[str, Any]) -> str:
    return (
        f"this process's CPU per append: product {prod['cpu_per_op'] * 1000:.2f} ms, baseline "
        f"{base['cpu_per_op'] * 1000:.2f} ms (one process: its GIL caps it at "
        f"{1 / prod['cpu_per_op']:,.0f} appends/s); round trips an append: product "
        f"{prod['round_trips']}, baseline {base['round_trips']}"
    )


def bench_append(writers: int, per_writer: int) -> dict[str, Any]:
    """Direct appends; issue #7's targets: the ratio at 1 writer, the rate at 8 or more."""
    prod, base = _run(writers, per_writer)
    total = writers * per_writer
    if writers == 1:
        targets = [common.at_most("ratio", prod["median"] / base["median"], RATIO_TARGET, "x")]
    elif writers >= 8:
        targets = [common.at_least("appends/s", total / prod["median"], SUSTAINED_TARGET, "/s")]
    else:
        targets = []
    return common.result(
        f"append, {writers} writer(s), direct",
        common.side(prod, total, "appends/s", "writes.create"),
        common.side(base, total, "appends/s", "plain INSERT"),
        operations=total,
        details=[cpu_detail(prod, base)],
        targets=targets,
    )


def _select1_latency(samples: int) -> float:
    """Median seconds of ``SELECT 1`` on one pooled connection of the current settings."""
    from shared.storage.engine import database

    engine = database().engine
    times = []
    with engine.connect() as conn:
        for _ in range(samples):
            started = time.perf_counter()
            conn.execute(text("SELECT 1")).scalar_one()
            times.append(time.perf_counter() - started)
    return common.stats(times)["median"]


def bench_append_proxied(writers: int, per_writer: int, delay_ms: float = 1.0) -> dict[str, Any]:
    """The append benchmark at ``writers`` writers (and as many pooled connections) through
    a proxy adding ``delay_ms`` each way, as to a database a network away."""
    url = os.environ["DATABASE_URL"]
    direct_rtt = _select1_latency(200)
    with (
        proxy.latency_proxy(url, delay_ms) as proxied,
        proxy.database_through(proxied, PLANT_DB_POOL_SIZE=str(writers)),
    ):
        proxied_rtt = _select1_latency(200)
        prod, base = _run(writers, per_writer)
    total = writers * per_writer
    rate = total / prod["median"]
    return common.result(
        f"append, {writers} writers, one tenant, via proxy (+{delay_ms:g} ms each way)",
        common.side(prod, total, "appends/s", "writes.create"),
        common.side(base, total, "appends/s", "plain INSERT"),
        operations=total,
        details=[
            f"SELECT 1 round trip: {direct_rtt * 1000:.2f} ms direct, "
            f"{proxied_rtt * 1000:.2f} ms through the proxy "
            f"(+{(proxied_rtt - direct_rtt) * 1000:.2f} ms)",
            f"pool size {writers}",
            cpu_detail(prod, base),
        ],
        targets=[common.at_least("appends/s per tenant log", rate, PER_TENANT_TARGET, "/s")],
    )


def _writer_process(
    mode: str, tenant: str, items: list[Any], threads: int, ready, go, done
) -> None:
    """One spawned writer process: ``threads`` threads appending its share of ``items`` to
    one tenant's log (``mode`` "product": writes.create; "baseline": a plain INSERT)."""
    try:
        from shared.registry import writes
        from shared.security.principal import Principal
        from shared.storage.engine import database

        engine = database().engine
        warm = [engine.connect() for _ in range(threads)]  # the pool is open before timing
        for conn in warm:
            conn.close()
        author = Principal("bench", tenant, frozenset({"author"}))
        share = len(items) // threads

        def work(n: int) -> None:
            for i in range(n * share, (n + 1) * share):
                if mode == "product":
                    writes.create(author, "skills", items[i], f"bench-{tenant}-{i}")
                else:
                    _plain_insert(engine, items[i])

        ready.put(None)
        go.wait()
        common.threads(work, threads)
        done.put(time.perf_counter())
    except BaseException as exc:  # reported to the parent, which fails the benchmark
        ready.put(None)
        done.put(f"{type(exc).__name__}: {exc}")


def _processes(mode: str, chunks: list[list[Any]], threads: int) -> float:
    """Wall seconds for every writer process to append its chunk, timed from one start
    signal (perf_counter is the system's monotonic clock, shared by the processes)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    ready, done, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    tenant = f"b-{uuid.uuid4().hex[:10]}"
    procs = [
        ctx.Process(target=_writer_process, args=(mode, tenant, chunk, threads, ready, go, done))
        for chunk in chunks
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get(timeout=120)
    started = time.perf_counter()
    go.set()
    ends = [done.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    failed = [e for e in ends if isinstance(e, str)]
    if failed:
        raise RuntimeError(f"{mode} writer failed: {failed[0]}")
    return max(ends) - started


def bench_append_processes(
    processes: int, threads: int, per_writer: int, delay_ms: float = 1.0
) -> dict[str, Any]:
    """One tenant's log written by ``processes`` writer processes of ``threads`` threads each
    (as several Cloud Run instances would), through the latency proxy: the log's own ceiling,
    which one client process's CPU hides."""
    writers = processes * threads
    bodies = seed.skill_bodies(seed.SEED, writers * per_writer)
    stored = _canonical_documents(bodies)
    plain_table("bench_plain")
    share = threads * per_writer
    url = os.environ["DATABASE_URL"]
    with (
        proxy.latency_proxy(url, delay_ms) as proxied,
        proxy.database_through(proxied, PLANT_DB_POOL_SIZE=str(threads)),
    ):
        prod, base = common.interleaved(
            lambda: _processes(
                "product",
                [bodies[p * share : (p + 1) * share] for p in range(processes)],
                threads,
            ),
            lambda: _processes(
                "baseline",
                [stored[p * share : (p + 1) * share] for p in range(processes)],
                threads,
            ),
        )
    total = writers * per_writer
    rate = total / prod["median"]
    return common.result(
        f"append, {writers} writers ({processes} processes x {threads} threads), one tenant, "
        f"via proxy (+{delay_ms:g} ms each way)",
        common.side(prod, total, "appends/s", "writes.create"),
        common.side(base, total, "appends/s", "plain INSERT"),
        operations=total,
        details=[
            f"each process its own pool of {threads}; PostgreSQL, the proxy and the writers "
            f"share this machine's {os.cpu_count()} cores"
        ],
        targets=[common.at_least("appends/s per tenant log", rate, PER_TENANT_TARGET, "/s")],
    )
