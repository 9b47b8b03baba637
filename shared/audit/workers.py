"""The worker processes a full audit hands its two long passes to.

Hashing and checking a million entries, and comparing a million heads with what the entries
say, is Python work, one core's worth per process (the GIL), and the database's share of it
is small; so the ranges are handed to a pool of spawned processes, each in its own
transaction that imports the audit's snapshot (they read exactly what the audit's
transaction sees), and the audit merges what each found in log order. The tasks live beside
the passes they run (``entry_ranges.scan``, ``heads.parallel.check_heads``); a worker never decides
anything that needs another range. Spawned, not forked: the request's process has threads
and open connections. One pool serves both passes, so its processes start once an audit.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any


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
        ahead; what is not yet started when the caller stops is cancelled. A result handed
        on is no longer held here (its future let go): a full audit's ranges hold a million
        summaries between them."""
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.count, mp_context=context)
        futures: deque[Future[Any]] = deque(self._pool.submit(task, *call) for call in calls)
        try:
            while futures:
                yield futures.popleft().result()
        finally:
            for future in futures:
                future.cancel()
