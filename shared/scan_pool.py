"""A full audit's entries pass, its ranges scanned side by side in worker processes.

Hashing and checking a million entries is Python work, one core's worth per process (the
GIL), and the database's share of it is small; so the ranges are scanned by a pool of
spawned processes, each in its own transaction that imports the audit's snapshot (they read
exactly what the audit's transaction sees), and the audit merges what each found in log
order (``Auditor.merge``). A worker never decides anything that needs an earlier range:
the first version it reads of each entity is handed back (``Scanned.opening``) for the
audit to link to the chain it has so far. Spawned, not forked: the request's process has
threads and open connections.
"""

from __future__ import annotations

import marshal
import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from shared.findings import Finding

# entity id -> (version, prev_digest, log index, kind, findings before it) of the first
# version a range holds of it, unless that is a version 1 linking to nothing (all a new
# entity's first needs); the count places what linking it finds among the range's findings
Opening = dict[str, tuple[int, bytes | None, int, str, int]]


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


def scan(tenant: str, snapshot: str, low: int, high: int, reported: set[int]) -> Scanned:
    """Scan entries [low, high) as the audit would, in the audit's snapshot (a worker's
    task: module level, so a spawned process can import it)."""
    from shared import auditing
    from shared.storage.engine import database

    with database().transaction(tenant, shared_snapshot=snapshot) as conn:
        return auditing.Auditor(conn, tenant).scan(low, high, reported)


def scanned(
    tenant: str, snapshot: str, ranges: Sequence[tuple[int, int]], reported: set[int], workers: int
) -> Iterator[Scanned]:
    """Each range's scan, in the order given, from ``workers`` processes working ahead."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(scan, tenant, snapshot, low, high, reported) for low, high in ranges]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()
