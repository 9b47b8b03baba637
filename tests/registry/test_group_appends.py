"""Group commit of one-statement writes (``plant_append_versions``, ``versions._appends``):
a group gives exactly what writing its items one after another would, a refused item costs
nobody else anything, and concurrent writers lose nothing."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared import audit
from shared.errors import Conflict
from shared.registry import certification, versions, writes
from shared.security.principal import Principal
from shared.storage import ledger
from shared.storage.engine import sqlstate
from tests.support import round_trips


def _author(tenant: str) -> Principal:
    return Principal("alice", tenant, frozenset({"author", "reader"}))


def _skill(name: str) -> dict[str, str]:
    return {"name": name, "description": "d", "category": "technical"}


def _prepared(monkeypatch, operation, *args) -> ledger.NewVersion:
    """The version an operation would write, made by the real code but not written."""
    made: list[ledger.NewVersion] = []

    class Capture:
        def submit(self, new: ledger.NewVersion) -> versions.Written:
            made.append(new)
            return 0, {}

    with monkeypatch.context() as patch:
        patch.setattr(versions, "_appends", Capture())
        operation(*args)
    return made[0]


def _log(superuser, tenant: str) -> list[tuple[int, str, int]]:
    with superuser.connect() as conn:
        return [
            (r.idx, str(r.entity_id), r.version)
            for r in conn.execute(
                text(
                    "SELECT idx, entity_id, version FROM log_entries WHERE tenant_id = :t "
                    "ORDER BY idx"
                ),
                {"t": tenant},
            )
        ]


def _audit_is_clean(tenant: str) -> None:
    run, started = audit.run(Principal("audrey", tenant, frozenset({"auditor"})), {"mode": "full"})
    assert started and run["status"] == "completed" and run["findings"] == [], run


def test_a_group_gives_what_its_items_one_after_another_would(superuser, monkeypatch):
    one, two = f"t-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:8]}"
    author = _author(one)
    existing = writes.create(author, "skills", _skill("existing"), "r")
    existing_id = existing.body["identity"]["id"]

    def amend(description: str):
        return lambda: writes.amend(
            author,
            "skills",
            existing_id,
            {"description": description, "amendment_reason": "edit"},
            '"v1"',
            "r",
        )

    group = [
        _prepared(monkeypatch, writes.create, author, "skills", _skill("alpha"), "r"),
        _prepared(monkeypatch, writes.create, _author(two), "skills", _skill("alpha"), "r"),
        _prepared(monkeypatch, amend("first")),
        _prepared(monkeypatch, writes.create, author, "skills", _skill("alpha"), "r"),
        _prepared(monkeypatch, amend("second")),  # read v1 too: its head moved meanwhile
        _prepared(monkeypatch, writes.create, author, "skills", _skill("existing"), "r"),
        _prepared(monkeypatch, writes.create, author, "skills", _skill("beta"), "r"),
    ]
    indices = [w and w[0] for w in versions._append_together(group)]
    # Each tenant's items in the order given, on its own counter; the second "alpha", the
    # stale amendment and the taken name are refused and use up no index.
    assert indices == [1, 0, 2, None, None, None, 3]
    assert _log(superuser, one) == [
        (0, existing_id, 1),
        (1, group[0].entity_id, 1),
        (2, existing_id, 2),
        (3, group[6].entity_id, 1),
    ]
    assert _log(superuser, two) == [(0, group[1].entity_id, 1)]
    # A refused item's writer, running it alone, gets the database's own answer.
    with pytest.raises(Conflict) as taken:
        writes.create(author, "skills", _skill("alpha"), "r")
    assert taken.value.extensions["existing_id"] == group[0].entity_id
    _audit_is_clean(one)
    _audit_is_clean(two)


def test_a_group_that_fails_as_a_whole_writes_nothing(superuser, monkeypatch, tenant):
    author = _author(tenant)
    good = _prepared(monkeypatch, writes.create, author, "skills", _skill("good"), "r")
    bad = _prepared(monkeypatch, writes.create, author, "skills", _skill("bad"), "r")
    broken = ledger.NewVersion(**{**bad.__dict__, "entity_id": "not-a-uuid"})
    with pytest.raises(DBAPIError) as failed:
        versions._append_together([good, broken])
    assert sqlstate(failed.value) == "22P02"
    assert _log(superuser, tenant) == []  # not even the good one
    with pytest.raises(ValueError):
        ledger.append_versions(None, [good] * (ledger.MAX_GROUP + 1))


def test_concurrent_creates_share_statements_and_lose_nothing(superuser, monkeypatch, tenant):
    """The writers that lead are held inside their statements (alone or grouped) until all
    twelve are held, queued or done: the queued ones must share statements, every
    acknowledged create must be in the log once, and a name two of them race for goes to
    exactly one (the other gets the 409 naming it)."""
    author = _author(tenant)
    names = [f"skill {i}" for i in range(9)] + ["contested", "contested"]
    real_append, real_group = ledger.append_version, ledger.append_versions
    lock, released = threading.Lock(), threading.Event()
    held_now, done = [0], [0]

    def hold(items: int) -> None:
        # A leader holds the writers of its group with it, and a writer that is done (an
        # error before its statement, say) counts too: otherwise a leader that ended early
        # would leave writers neither held nor queued, and this would wait for nothing.
        if released.is_set():
            return
        with lock:
            held_now[0] += items
        deadline = time.monotonic() + 30
        while (queued := versions._appends.queued()) + held_now[0] + done[0] < 12:
            assert time.monotonic() < deadline, (
                f"the writers never queued: {held_now[0]} held, {queued} queued, {done[0]} done"
            )
            time.sleep(0.002)
        released.set()

    def held(conn, new):
        hold(1)
        return real_append(conn, new)

    def held_group(conn, group):
        hold(len(group))
        return real_group(conn, group)

    monkeypatch.setattr(ledger, "append_version", held)
    monkeypatch.setattr(ledger, "append_versions", held_group)
    wire = round_trips.watch(monkeypatch)

    def create(name: str):
        try:
            return writes.create(author, "skills", _skill(name), "r")
        except Conflict as exc:
            return exc
        finally:
            with lock:
                done[0] += 1

    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(create, ["first", *names]))
    monkeypatch.undo()
    groups = [s for s in wire.statements if "plant_append_versions" in s]
    assert groups, wire.statements
    conflicts = [o for o in outcomes if isinstance(o, Conflict)]
    docs = [o for o in outcomes if not isinstance(o, Conflict)]
    assert len(docs) == 11 and len(conflicts) == 1
    winner = next(d for d in docs if d.body["identity"]["name"] == "contested")
    assert conflicts[0].extensions["existing_id"] == winner.body["identity"]["id"]
    stored = {entity_id: idx for idx, entity_id, _ in _log(superuser, tenant)}
    served = {d.body["identity"]["id"]: d.body["audit_trail"]["log_index"] for d in docs}
    assert served == stored
    assert sorted(stored.values()) == list(range(len(stored)))
    _audit_is_clean(tenant)


def _waiting_for_locks(conn, statement: str) -> int:
    """Backends running ``statement`` that wait for a lock (each look a fresh snapshot:
    pg_stat_activity holds still for the rest of a transaction)."""
    try:
        return conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE :q"
            ),
            {"q": f"%{statement}(%"},
        ).scalar_one()
    finally:
        conn.rollback()


def test_a_group_locks_the_heads_it_rechecks_before_the_counter(
    monkeypatch, tenant, database_url, superuser
):
    """Another writer holds a head the group's second item references, then asks for the
    tenant's counter (as a single amendment of that entity does). Had the group taken the
    counter for its first item before waiting for that head, the two would deadlock; it
    waits for the head first, so the other writer finishes and then the group does."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from shared.storage.urls import pg8000_url

    author = _author(tenant)
    skill_id = writes.create(author, "skills", _skill("pinned"), "r").body["identity"]["id"]
    certifier = Principal("carol", tenant, frozenset({"certifier"}))
    certification.certify(certifier, "skills", skill_id, None, "r")  # job roles need that
    role = {
        "name": "role",
        "description": "d",
        "seniority_level": "junior",
        "required_skills": [skill_id],
    }
    group = [
        _prepared(monkeypatch, writes.create, author, "skills", _skill("first"), "r"),
        _prepared(monkeypatch, writes.create, author, "job-roles", role, "r"),
    ]
    assert skill_id in group[1].move.pins
    size = len(_log(superuser, tenant))  # the skill, its certificate, its certified version
    engine = create_engine(pg8000_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as other, engine.connect() as watcher:
            other.execute(
                text("SELECT 1 FROM entity_heads WHERE entity_id = CAST(:e AS uuid) FOR UPDATE"),
                {"e": skill_id},
            )
            with ThreadPoolExecutor(1) as pool:
                result = pool.submit(versions._append_together, group)
                deadline = time.monotonic() + 10
                while not _waiting_for_locks(watcher, "plant_append_versions"):
                    assert time.monotonic() < deadline, "the group never waited for the head"
                    time.sleep(0.01)
                other.execute(
                    text("UPDATE log_heads SET size = size WHERE tenant_id = :t"), {"t": tenant}
                )  # a deadlock here would raise 40P01 (or fail the group)
                other.commit()
                indices = [w and w[0] for w in result.result(timeout=10)]
    finally:
        engine.dispose()
    assert indices == [size, size + 1]


def test_a_tenant_waiting_for_its_counter_holds_no_other_tenants_create(database_url, superuser):
    """Tenant A's log counter is row-locked (as A's bulk create holds it until its commit)
    and A's creates wait for it on the server, as many as may lead; tenant B's create is
    written meanwhile, and A's are written once the counter is free. With one queue for
    every tenant, B's create waited in it behind A's until A's batch committed."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from shared.storage.urls import pg8000_url

    one, two = f"t-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:8]}"
    writes.create(_author(one), "skills", _skill("first"), "r")  # A's counter row exists
    engine = create_engine(pg8000_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as batch, engine.connect() as watcher, ThreadPoolExecutor(3) as pool:
            batch.execute(
                text("SELECT 1 FROM log_heads WHERE tenant_id = :t FOR UPDATE"), {"t": one}
            )
            waiting = [
                pool.submit(writes.create, _author(one), "skills", _skill(f"a {i}"), "r")
                for i in range(2)
            ]
            deadline = time.monotonic() + 10
            while _waiting_for_locks(watcher, "plant_append_version") < 2:
                assert time.monotonic() < deadline, "tenant A's creates never waited"
                time.sleep(0.01)
            other = pool.submit(writes.create, _author(two), "skills", _skill("b"), "r")
            try:
                made = other.result(timeout=5)
            finally:
                batch.commit()  # A's counter is free: A's creates go on
            assert made.body["audit_trail"]["log_index"] == 0
            assert sorted(
                w.result(timeout=10).body["audit_trail"]["log_index"] for w in waiting
            ) == [1, 2]
    finally:
        engine.dispose()
    assert [idx for idx, _, _ in _log(superuser, one)] == [0, 1, 2]
    assert [idx for idx, _, _ in _log(superuser, two)] == [0]
