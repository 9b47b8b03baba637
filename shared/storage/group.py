"""Group commit for one-statement writes: the writes that queue up while one is in flight go
to the database together, as one statement.

Leader and followers, no background thread: a writer that finds nobody writing becomes the
leader and writes what is queued (its own item first); the others wait and get their results
from it. One writer alone is written alone, exactly as without grouping; under load each
round trip, commit and WAL flush is shared by everything that queued during the previous one.

``GroupCommits`` keeps one such queue per tenant: a group never mixes tenants, so writes that
wait on the server for their tenant's log counter (which a bulk create holds to its commit)
never hold another tenant's writes behind them.

An item the group statement did not take (``together`` gives None for it), and every item of
a group whose statement failed, is written by its own writer alone, in its own thread: a
refusal or an error then reaches that writer as the database's own error, and nobody else's
write depends on it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")  # what writing an item gives back (its index, and its receipt)

log = logging.getLogger(__name__)


def _check(limit: int, in_flight: int) -> None:
    if limit < 1 or in_flight < 1:
        raise ValueError("limit and in_flight must be at least 1")


class _Waiter(Generic[T, R]):
    __slots__ = ("index", "item", "settled", "taken", "woken")

    def __init__(self, item: T, lock: threading.Lock) -> None:
        self.item = item
        self.index: R | None = None
        self.taken = False  # in a leader's group
        self.settled = False  # that group is done: ``index`` is final
        self.woken = threading.Condition(lock)  # its own, so a wake-up wakes only it


class GroupCommit(Generic[T, R]):
    """Writes items through ``alone`` (one item, returns its index or raises) or, when
    several are queued, ``together`` (up to ``limit`` items, returns an index or None for
    each, in order)."""

    def __init__(
        self,
        alone: Callable[[T], R],
        together: Callable[[Sequence[T]], Sequence[R | None]],
        limit: int,
        in_flight: int = 1,
    ) -> None:
        _check(limit, in_flight)
        self._alone = alone
        self._together = together
        self._limit = limit
        self._in_flight = in_flight
        self._queue: deque[_Waiter[T, R]] = deque()
        self._leaders = 0
        self._lock = threading.Lock()

    def queued(self) -> int:
        """Writers waiting for a leader to take them."""
        with self._lock:
            return len(self._queue)

    def submit(self, item: T) -> R:
        """Write ``item``; return its index once written, or raise what writing it raised."""
        waiter: _Waiter[T, R] = _Waiter(item, self._lock)
        with self._lock:
            self._queue.append(waiter)
            while not waiter.taken and self._leaders >= self._in_flight:
                waiter.woken.wait()
            leading = not waiter.taken
            if leading:
                self._leaders += 1
                self._queue.remove(waiter)
                group = [waiter]
                while self._queue and len(group) < self._limit:
                    group.append(self._queue.popleft())
                for w in group:
                    w.taken = True
                if self._queue and self._leaders < self._in_flight:
                    self._queue[0].woken.notify()  # a free lead and writers left: one takes it
            else:
                while not waiter.settled:
                    waiter.woken.wait()
        if leading:
            self._lead(group)
        if waiter.index is None:
            return self._alone(item)
        return waiter.index

    def _lead(self, group: list[_Waiter[T, R]]) -> None:
        """Write ``group`` while holding the lead, so that writers arriving meanwhile queue
        for the next statement instead of each starting its own."""
        indices: Sequence[R | None] = [None] * len(group)
        error: BaseException | None = None
        try:
            if len(group) == 1:
                try:
                    indices = [self._alone(group[0].item)]
                except BaseException as exc:  # re-raised below, once the lead is released
                    error = exc
            else:
                try:
                    indices = self._together([w.item for w in group])
                except Exception as exc:
                    log.warning(
                        "a group of %d writes failed (%s); each is written alone",
                        len(group),
                        type(exc).__name__,
                    )
                    indices = [None] * len(group)
        finally:
            if len(indices) != len(group):  # not one result per item: each writes alone
                indices = [None] * len(group)
            with self._lock:
                for w, index in zip(group, indices, strict=True):
                    w.index = index
                    w.settled = True
                    w.woken.notify()
                self._leaders -= 1
                if self._queue:  # the lead is free: the next queued writer may take it
                    self._queue[0].woken.notify()
        if error is not None:
            raise error


class GroupCommits(Generic[T, R]):
    """One ``GroupCommit`` per key (``key(item)``: the tenant), made on first use."""

    def __init__(
        self,
        key: Callable[[T], str],
        alone: Callable[[T], R],
        together: Callable[[Sequence[T]], Sequence[R | None]],
        limit: int,
        in_flight: int = 1,
    ) -> None:
        _check(limit, in_flight)
        self._key = key
        self._make = lambda: GroupCommit(alone, together, limit, in_flight)
        self._queues: dict[str, GroupCommit[T, R]] = {}
        self._lock = threading.Lock()

    def submit(self, item: T) -> R:
        """Write ``item`` in its key's queue (``GroupCommit.submit``)."""
        key = self._key(item)
        with self._lock:
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = self._make()
        return queue.submit(item)

    def queued(self) -> int:
        """Writers waiting for a leader, over every key."""
        with self._lock:
            queues = list(self._queues.values())
        return sum(queue.queued() for queue in queues)
