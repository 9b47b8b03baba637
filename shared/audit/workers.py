"""A full audit's two long passes, their ranges checked side by side in worker processes.

Hashing and checking a million entries, and comparing a million heads with what the entries
say, is Python work, one core's worth per process (the GIL), and the database's share of it
is small; so the ranges are handed to a pool of spawned processes, each in its own
transaction that imports the audit's snapshot (they read exactly what the audit's
transaction sees), and the audit merges what each found in log order (``Auditor.merge``,
``Auditor.take_heads``). A worker never decides anything that needs another range: the
first version it reads of each entity is handed back (``Scanned.opening``) for the audit to
link to the chain it has so far, and a head it cannot vouch for alone comes back as read
(``HeadsChecked.outcomes``). Spawned, not forked: the request's process has threads and
open connections. One pool serves both passes, so its processes start once an audit.
"""

from __future__ import annotations

import marshal
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from shared.audit.findings import Finding

# entity id -> (version, prev_digest, log index, kind, findings before it) of the first
# version a range holds of it, unless that is a version 1 linking to nothing (all a new
# entity's first needs); the count places what linking it finds among the range's findings
Opening = dict[str, tuple[int, bytes | None, int, str, int]]

# What checking one head did, in the order the heads were read: (head as read, its log
# index, [], [], []) for a head left to the audit, or (None, log index, findings, heads to
# read again, rule calls) for one checked here that did anything
Outcome = tuple[
    tuple[Any, ...] | None, int, list[Finding], list[tuple[Any, ...]], list[tuple[Any, ...]]
]


@dataclass
class Scanned:
    """What one range's scan found, for the audit to merge in log order."""

    low: int
    high: int
    intact: bool  # no entry of the range is missing
    leaves: bytes  # the recomputed leaf hashes, in row order, joined
    subtrees: list[tuple[int, bytes]]  # the same as a tree of their own makes them
    findings: list[Finding]
    kept: list[Any]  # auditing.Row
    mismatched: list[tuple[Any, bytes]]
    moved_from: dict[bytes, int]
    latest: dict[str, tuple[Any, ...]]  # as ``Auditor.latest``, for this range alone
    opening: Opening
    irregular: set[str]
    rows_read: int
    entries_verified: int

    def __getstate__(self) -> dict[str, Any]:
        """The summaries (most of what goes back: one per entity) as ``marshal`` bytes,
        which it writes about 3x faster than pickle; pickle takes the rest."""
        state = dict(self.__dict__)
        state["latest"] = marshal.dumps(self.latest)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state["latest"] = marshal.loads(state["latest"])  # noqa: S302 (our own worker's)
        self.__dict__.update(state)


class Summaries:
    """One range's summaries on their way to a worker, as ``marshal`` bytes made only when
    its task is sent (the pool sends a few ahead), so the audit keeps no copy of them."""

    def __init__(self, latest: dict[str, tuple[Any, ...]]) -> None:
        self.latest = latest

    def __reduce__(self) -> tuple[Any, ...]:
        return _summaries, (marshal.dumps(self.latest),)


def _summaries(data: bytes) -> Summaries:
    return Summaries(marshal.loads(data))  # noqa: S302 (the audit's own)


@dataclass
class HeadsChecked:
    """What checking the heads of one range of first indexes found, for the audit to take
    in the order the heads were read."""

    low: int
    high: int
    outcomes: list[Outcome] = field(default_factory=list)
    rows_read: int = 0


class Workers:
    """The worker processes of one audit: none until a pass hands them work, then the same
    ones for every pass, until the audit ends."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def run(self, task: Callable[..., Any], calls: Sequence[tuple[Any, ...]]) -> Iterator[Any]:
        """``task(*call)`` for each call, results in the order given, the workers working
        ahead; what is not yet started when the caller stops is cancelled."""
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.count, mp_context=context)
        futures: list[Future[Any]] = [self._pool.submit(task, *call) for call in calls]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def scan(tenant: str, snapshot: str, low: int, high: int, reported: set[int]) -> Scanned:
    """Scan entries [low, high) as the audit would, in the audit's snapshot (a worker's
    task: module level, so a spawned process can import it)."""
    from shared.audit import heads as auditing
    from shared.storage.engine import database

    with database().transaction(tenant, shared_snapshot=snapshot) as conn:
        return auditing.Auditor(conn, tenant).scan(low, high, reported)


def check_heads(
    tenant: str,
    snapshot: str,
    low: int,
    high: int,
    summaries: Summaries,
    shared: set[str],
    wanted: set[str],
    reported: set[int],
) -> HeadsChecked:
    """Check the heads whose first index is in [low, high) against the summaries of the
    entries scanned from ``low`` (a worker's task). ``shared``: entities read in other
    ranges too, whose newest summary only the audit has; ``wanted``: ids the rules need
    the current version of; ``reported``: indices already named."""
    from shared.audit import heads as auditing
    from shared.storage.engine import database

    with database().transaction(tenant, shared_snapshot=snapshot) as conn:
        auditor = auditing.Auditor(conn, tenant)
        auditor.latest, auditor.reported = summaries.latest, reported
        return auditor.check_heads(low, high, shared, wanted)


def scanned(
    workers: Workers,
    tenant: str,
    snapshot: str,
    ranges: Sequence[tuple[int, int]],
    reported: set[int],
) -> Iterator[Scanned]:
    """Each range's scan, in the order given."""
    return workers.run(scan, [(tenant, snapshot, low, high, reported) for low, high in ranges])


def heads_checked(
    workers: Workers,
    tenant: str,
    snapshot: str,
    ranges: Sequence[tuple[int, int, dict[str, tuple[Any, ...]]]],
    shared: set[str],
    wanted: set[str],
    reported: set[int],
) -> Iterator[HeadsChecked]:
    """Each range's heads checked (``check_heads``), in the order given: (low, high, the
    summaries of the entries scanned from low)."""
    return workers.run(
        check_heads,
        [
            (tenant, snapshot, low, high, Summaries(latest), shared, wanted, reported)
            for low, high, latest in ranges
        ],
    )
