"""``shared.storage.group.GroupCommit``: who writes alone, who shares a statement, and that
a refusal or an error reaches exactly the writer it belongs to."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from shared.storage.group import GroupCommit, GroupCommits


class Recorder:
    """``alone`` and ``together`` that record their calls; ``alone`` can be held."""

    def __init__(self, refuse: set[str] = frozenset(), fail_alone: set[str] = frozenset()):
        self.alone_calls: list[tuple[str, int]] = []  # (item, thread)
        self.groups: list[list[str]] = []
        self.refuse, self.fail_alone = refuse, fail_alone
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Semaphore(0)
        self.together_error: Exception | None = None

    def alone(self, item: str) -> int:
        self.alone_calls.append((item, threading.get_ident()))
        self.entered.release()
        assert self.hold.wait(10)
        if item in self.fail_alone:
            raise ValueError(f"refused {item}")
        return 1000 + ord(item[0])

    def together(self, items: Sequence[str]) -> list[int | None]:
        self.groups.append(list(items))
        if self.together_error is not None:
            raise self.together_error
        return [None if i in self.refuse else ord(i[0]) for i in items]


def _queued(group: GroupCommit, n: int) -> None:
    deadline = time.monotonic() + 10
    while len(group._queue) < n:
        assert time.monotonic() < deadline, "writers never queued"
        time.sleep(0.001)


def _submit_during_first(
    rec: Recorder, make: Callable[[], GroupCommit], items: str
) -> tuple[GroupCommit, dict[str, Future]]:
    """The first item's writer leads and is held inside ``alone`` while the others queue;
    then it is let go."""
    group = make()
    rec.hold.clear()
    pool = ThreadPoolExecutor(len(items))
    futures = {items[0]: pool.submit(group.submit, items[0])}
    assert rec.entered.acquire(timeout=10)
    for item in items[1:]:
        futures[item] = pool.submit(group.submit, item)
    _queued(group, len(items) - 1)
    rec.hold.set()
    pool.shutdown(wait=True)
    return group, futures


def test_a_writer_on_its_own_is_written_alone():
    rec = Recorder()
    group = GroupCommit(rec.alone, rec.together, limit=8)
    assert group.submit("a") == 1000 + ord("a")
    assert rec.alone_calls == [("a", threading.get_ident())] and rec.groups == []


def test_writers_arriving_during_a_write_share_the_next_statement():
    rec = Recorder()
    _, futures = _submit_during_first(
        rec, lambda: GroupCommit(rec.alone, rec.together, limit=8), "abcdef"
    )
    assert {k: f.result() for k, f in futures.items()} == {
        "a": 1000 + ord("a"),
        **{k: ord(k) for k in "bcdef"},
    }
    assert [item for item, _ in rec.alone_calls] == ["a"]
    assert len(rec.groups) == 1 and sorted(rec.groups[0]) == list("bcdef")


def test_a_statement_holds_at_most_limit_items():
    rec = Recorder()
    _, futures = _submit_during_first(
        rec, lambda: GroupCommit(rec.alone, rec.together, limit=3), "abcdefgh"
    )
    assert all(f.exception() is None for f in futures.values())
    assert max(len(g) for g in rec.groups) <= 3
    written = [i for g in rec.groups for i in g] + [i for i, _ in rec.alone_calls]
    assert sorted(written) == list("abcdefgh")  # each exactly once


def test_an_item_the_statement_refuses_is_written_alone_by_its_own_writer():
    rec = Recorder(refuse={"c", "d"}, fail_alone={"d"})
    _, futures = _submit_during_first(
        rec, lambda: GroupCommit(rec.alone, rec.together, limit=8), "abcde"
    )
    assert futures["c"].result() == 1000 + ord("c")  # written alone after the refusal
    with pytest.raises(ValueError, match="refused d"):  # its own error, to it alone
        futures["d"].result()
    assert futures["b"].result() == ord("b") and futures["e"].result() == ord("e")
    alone = dict(rec.alone_calls)
    assert set(alone) == {"a", "c", "d"} and alone["c"] != alone["d"]  # each in its thread


def test_a_failed_statement_leaves_every_item_to_be_written_alone():
    rec = Recorder()
    rec.together_error = RuntimeError("connection lost")
    _, futures = _submit_during_first(
        rec, lambda: GroupCommit(rec.alone, rec.together, limit=8), "abcd"
    )
    assert {k: f.result() for k, f in futures.items()} == {k: 1000 + ord(k) for k in "abcd"}
    assert len(rec.groups) == 1 and sorted(i for i, _ in rec.alone_calls) == list("abcd")


def test_an_error_of_the_leaders_own_write_reaches_only_the_leader():
    rec = Recorder(fail_alone={"a"})
    _, futures = _submit_during_first(
        rec, lambda: GroupCommit(rec.alone, rec.together, limit=8), "abc"
    )
    with pytest.raises(ValueError, match="refused a"):
        futures["a"].result()
    assert futures["b"].result() == ord("b") and futures["c"].result() == ord("c")


def test_in_flight_bounds_the_statements_on_their_way():
    rec = Recorder()
    group = GroupCommit(rec.alone, rec.together, limit=8, in_flight=2)
    rec.hold.clear()
    with ThreadPoolExecutor(4) as pool:
        first = [pool.submit(group.submit, "a"), pool.submit(group.submit, "b")]
        assert rec.entered.acquire(timeout=10) and rec.entered.acquire(timeout=10)
        later = [pool.submit(group.submit, "c"), pool.submit(group.submit, "d")]
        _queued(group, 2)  # both leads are taken: these wait
        assert len(rec.alone_calls) == 2
        rec.hold.set()
    assert [f.result() for f in first] == [1000 + ord("a"), 1000 + ord("b")]
    assert all(f.exception() is None for f in later)


def test_limits_are_checked():
    with pytest.raises(ValueError):
        GroupCommit(lambda i: 0, lambda items: [], limit=0)
    with pytest.raises(ValueError):
        GroupCommit(lambda i: 0, lambda items: [], limit=1, in_flight=0)


def test_every_writer_is_woken_when_more_queue_than_a_group_holds():
    """Each writer waits on its own condition: a finished lead wakes its group and the next
    queued writer only. With more writers queued than a group holds and two leads, nobody
    may be left waiting for a wake-up that never comes."""
    lock = threading.Lock()
    written: list[str] = []

    def alone(item: str) -> int:
        time.sleep(0.001)
        with lock:
            written.append(item)
        return int(item)

    def together(items: Sequence[str]) -> list[int | None]:
        time.sleep(0.002)
        with lock:
            written.extend(items)
        return [int(i) for i in items]

    group = GroupCommit(alone, together, limit=3, in_flight=2)
    with ThreadPoolExecutor(24) as pool:
        futures = [pool.submit(group.submit, str(i)) for i in range(600)]
        results = [f.result(timeout=30) for f in futures]
    assert results == list(range(600))
    assert sorted(written, key=int) == [str(i) for i in range(600)]
    assert not group._queue and group._leaders == 0


def test_a_held_key_never_holds_another_keys_writes():
    """Both leads of key ``a`` are held inside their writes (as writes waiting on the server
    for their tenant's counter are); a write of key ``b`` is written meanwhile, and ``a``'s
    queued writer still goes to ``a``'s next group, never to ``b``'s."""
    rec = Recorder()
    group = GroupCommits(lambda item: item[0], rec.alone, rec.together, limit=8, in_flight=2)
    rec.hold.clear()
    with ThreadPoolExecutor(4) as pool:
        held = [pool.submit(group.submit, item) for item in ("a1", "a2")]
        assert rec.entered.acquire(timeout=10) and rec.entered.acquire(timeout=10)
        queued = pool.submit(group.submit, "a3")
        deadline = time.monotonic() + 10
        while group.queued() < 1:
            assert time.monotonic() < deadline, "a3 never queued"
            time.sleep(0.001)
        other = pool.submit(group.submit, "b1")
        assert rec.entered.acquire(timeout=10)  # b1 leads at once: nobody holds ``b``
        rec.hold.set()
        assert other.result(timeout=10) == 1000 + ord("b")
        assert [f.result(timeout=10) for f in (*held, queued)] == [1000 + ord("a")] * 3
    assert rec.groups == []  # each was written alone: no group took two keys
    with pytest.raises(ValueError):
        GroupCommits(lambda item: item, rec.alone, rec.together, limit=0)
