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


def _side_by_side(run: Callable[[], float]) -> tuple[dict[str, float], dict[str, float]]:
    def without() -> float:
        with _without_receipts():
            return run()

    signed, unsigned = common.interleaved(run, without)
    return signed, unsigned


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
    signed, unsigned = _side_by_side(run)
    total = writers * per_writer
    return common.result(
        f"receipts' cost: append, {writers} writer(s), direct",
        common.side(signed, total, "appends/s", "with receipts"),
        common.side(unsigned, total, "appends/s", "without (the write path before them)"),
        operations=total,
        details=["one tenant a repeat; same process, pool and database, interleaved"],
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
    signed, unsigned = _side_by_side(run)
    return common.result(
        f"receipts' cost: bulk create of {count:,} skills in one call",
        common.side(signed, count, "entities/s", "with its batch receipt"),
        common.side(unsigned, count, "entities/s", "without"),
        operations=count,
        details=["one signature and the range's tree of paths, against none"],
    )
