"""The cyclic collector pauses for a bulk create (shared.registry.collector) and comes back as it
was, whatever the batch did and however many ran at once."""

from __future__ import annotations

import gc
import threading

import pytest

from shared.errors import ValidationFailed
from shared.registry import batches, collector
from shared.security.principal import Principal
from shared.storage import ledger


@pytest.fixture(autouse=True)
def _collector_enabled():
    gc.enable()
    yield
    gc.enable()


def test_a_pause_disables_the_collector_and_restores_it():
    with collector.paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_collector_comes_back_after_an_error_inside():
    with pytest.raises(RuntimeError), collector.paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled():
    gc.disable()
    with collector.paused():
        pass
    assert not gc.isenabled()


def test_overlapping_pauses_resume_only_when_the_last_ends():
    entered, release = threading.Event(), threading.Event()

    def other() -> None:
        with collector.paused():
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=other)
    with collector.paused():
        thread.start()
        assert entered.wait(5)
    assert not gc.isenabled()  # the other thread's pause is still in progress
    release.set()
    thread.join(5)
    assert gc.isenabled()


def _author(tenant: str) -> Principal:
    return Principal("alice", tenant, frozenset({"author", "reader"}))


def _skills(count: int) -> list[dict]:
    return [{"name": f"s {i}", "description": "d", "category": "technical"} for i in range(count)]


def test_a_batch_is_written_with_the_collector_paused(database_url, tenant, monkeypatch):
    seen: list[bool] = []
    write = ledger.create_versions

    def watched(*args, **kwargs):
        seen.append(gc.isenabled())
        return write(*args, **kwargs)

    monkeypatch.setattr(ledger, "create_versions", watched)
    made = batches.create_batch(_author(tenant), "skills", _skills(20), "r")["items"]
    assert len(made) == 20
    assert seen == [False]
    assert gc.isenabled()


def test_a_refused_batch_leaves_the_collector_enabled(database_url, tenant):
    bodies = _skills(3)
    bodies[1]["name"] = ""
    with pytest.raises(ValidationFailed):
        batches.create_batch(_author(tenant), "skills", bodies, "r")
    assert gc.isenabled()
