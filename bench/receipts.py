"""The cost of signed write receipts (issue 22): the registry's writes as shipped (each signs
and stores its receipt in its transaction) against the same writes without receipts, the
write path as it was before them, rebuilt here from the same ledger functions and used only
by this benchmark: a single append is one autocommit statement (no BEGIN, no COMMIT), a group
one autocommit statement, a bulk create signs and stores nothing. Same process, same pool,
same database, interleaved."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from bench import common, seed


@contextmanager
def _without_receipts() -> Iterator[None]:
    """The registry's writes with the write path of before receipts (see the docstring)."""
    from shared.registry import batches, versions
    from shared.storage import ledger
    from shared.storage.engine import database
    from shared.storage.group import GroupCommits

    def alone(new: ledger.NewVersion) -> versions.Written:
        with database().autocommit() as conn:
            return ledger.append_version(conn, new).index, {}

    def together(group: Sequence[ledger.NewVersion]) -> list[versions.Written | None]:
        with database().autocommit() as conn:
            indices = ledger.append_versions(conn, group)
        return [None if i is None else (i, {}) for i in indices]

    class _Unsigned:
        """What a bulk create's response reads of a batch receipt, signing nothing."""

        path: tuple[bytes, ...] = ()
        index = 0

        def to_json(self) -> dict[str, Any]:
            return {}

    def sign_batch(tenant: str, first: int, leaves: Sequence[bytes]) -> Any:
        return None, _Unsigned(), [_Unsigned()] * len(leaves)

    def store(conn: Any, tenant: str, row: Any) -> None:
        pass

    shipped = versions._appends
    shipped_batch = batches.receipts.sign_batch, batches.receipts.store
    versions._appends = GroupCommits(
        lambda new: new.tenant, alone, together, limit=ledger.MAX_GROUP, in_flight=2
    )
    batches.receipts.sign_batch = sign_batch  # type: ignore[assignment]
    batches.receipts.store = store  # type: ignore[assignment]
    try:
        yield
    finally:
        versions._appends = shipped
        batches.receipts.sign_batch, batches.receipts.store = shipped_batch


def _side_by_side(
    run: Callable[[], float], operations: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both sides interleaved; each with this process's CPU seconds per operation."""
    cpu: dict[str, list[float]] = {"with": [], "without": []}

    def signed() -> float:
        return common.with_cpu(run, cpu["with"])

    def unsigned() -> float:
        with _without_receipts():
            return common.with_cpu(run, cpu["without"])

    with_t, without_t = common.interleaved(signed, unsigned)
    for timing, key in ((with_t, "with"), (without_t, "without")):
        timing["cpu_per_op"] = sum(cpu[key]) / (operations * common.REPEATS)
    return with_t, without_t


def _cpu_detail(signed: dict[str, Any], unsigned: dict[str, Any], unit: str) -> str:
    return (
        f"this process's CPU per {unit}: with receipts {signed['cpu_per_op'] * 1000:.3f} ms, "
        f"without {unsigned['cpu_per_op'] * 1000:.3f} ms"
    )


def bench_append_receipts(writers: int, per_writer: int) -> dict[str, Any]:
    """``writes.create`` at ``writers`` threads, with receipts and without."""
    from shared.registry import writes
    from shared.security.principal import Principal
    from shared.storage.engine import database

    bodies = seed.skill_bodies(seed.SEED, writers * per_writer)

    def run() -> float:  # a fresh tenant each time: the same names are free again
        author = Principal("bench", f"r-{uuid.uuid4().hex[:10]}", frozenset({"author"}))

        def work(n: int) -> None:
            for i in range(n * per_writer, (n + 1) * per_writer):
                writes.create(author, "skills", bodies[i], f"bench-{i}")

        return common.threads(work, writers)

    database().ping()
    total = writers * per_writer
    signed, unsigned = _side_by_side(run, total)
    return common.result(
        f"receipts' cost: append, {writers} writer(s), direct",
        common.side(signed, total, "appends/s", "with receipts"),
        common.side(unsigned, total, "appends/s", "without (the write path before them)"),
        operations=total,
        details=[
            "one tenant a repeat; same process, pool and database, interleaved",
            _cpu_detail(signed, unsigned, "append"),
        ],
    )


def bench_http_receipts(clients: int, per_client: int) -> dict[str, Any]:
    """``POST /registry/skills`` through the registry function's own WSGI app (routing,
    token check, JSON in and out, the write) in this process, without a socket, by
    ``clients`` threads: with receipts (each response carries its receipt) and without."""
    import contextlib
    import json
    import os
    from pathlib import Path

    import functions_framework

    from bench.http import author_token
    from shared.storage.engine import database

    root = Path(__file__).resolve().parents[1]
    app = functions_framework.create_app("registry", str(root / "main.py"))
    total = clients * per_client
    bodies = [json.dumps(b).encode() for b in seed.skill_bodies(seed.SEED, total)]

    def run() -> float:
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {author_token(f'h-{uuid.uuid4().hex[:10]}')}",
        }

        def work(n: int) -> None:
            client = app.test_client()
            for body in bodies[n * per_client : (n + 1) * per_client]:
                response = client.post("/skills", data=body, headers=headers)
                if response.status_code != 201:
                    raise RuntimeError(f"{response.status_code} {response.data[:300]!r}")

        # Each request's log line is written (to stdout, as Cloud Run reads it), not shown.
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            return common.threads(work, clients)

    database().ping()
    signed, unsigned = _side_by_side(run, total)
    return common.result(
        f"receipts' cost: HTTP POST /registry/skills, {clients} client(s), in process",
        common.side(signed, total, "req/s", "with receipts"),
        common.side(unsigned, total, "req/s", "without (the write path before them)"),
        operations=total,
        details=[
            "functions-framework's app for the registry function, Flask's test client "
            "(no socket); one tenant a repeat; interleaved",
            _cpu_detail(signed, unsigned, "request"),
        ],
    )


def bench_bulk_receipts(count: int) -> dict[str, Any]:
    """``batches.create_batch`` of ``count`` skills, with its batch receipt and without."""
    from shared.registry import batches
    from shared.security.principal import Principal
    from shared.storage.engine import database

    bodies = seed.skill_bodies(seed.SEED, count)

    def run() -> float:
        author = Principal("bench", f"q-{uuid.uuid4().hex[:10]}", frozenset({"author"}))
        return common.timed(lambda: batches.create_batch(author, "skills", bodies, "bench"))

    database().ping()
    signed, unsigned = _side_by_side(run, count)
    return common.result(
        f"receipts' cost: bulk create of {count:,} skills in one call",
        common.side(signed, count, "entities/s", "with its batch receipt"),
        common.side(unsigned, count, "entities/s", "without"),
        operations=count,
        details=[
            "one signature and the range's tree of paths, against none",
            _cpu_detail(signed, unsigned, "entity"),
        ],
    )
