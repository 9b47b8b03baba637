"""Admission of bulk writes: a few at once per process, one at a time per tenant.

A 10,000-item batch holds a server thread, a pooled connection and its tenant's log counter
(row-locked to its commit) for a second or more. Batches queued behind one another would
hold every thread and connection of the instance while they wait, and any other tenant's
request would then wait for a thread (measured: single creates from 3 ms to 1.6-2 s with
eight batches in flight). So a batch that finds no free slot, or its tenant already running
one (which it could only wait behind, on the counter), is refused at once with 503 and
Retry-After, never queued.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from shared.errors import ServiceUnavailable


class Slots:
    """At most ``limit()`` holders at once, each tenant at most once."""

    def __init__(self, limit: Callable[[], int], what: str) -> None:
        self._limit = limit
        self._what = what
        self._holders: set[str] = set()
        self._lock = threading.Lock()

    @contextmanager
    def held(self, tenant: str) -> Iterator[None]:
        """Hold a slot for ``tenant`` while the block runs; raise ServiceUnavailable (503 +
        Retry-After) at once if there is none."""
        with self._lock:
            if tenant in self._holders:
                raise ServiceUnavailable(f"this tenant's previous {self._what} is still running")
            if len(self._holders) >= self._limit():
                raise ServiceUnavailable(f"no {self._what} slot is free here; retry shortly")
            self._holders.add(tenant)
        try:
            yield
        finally:
            with self._lock:
                self._holders.discard(tenant)
