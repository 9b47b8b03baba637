"""One-statement writes (``plant_append_version``): one round trip, no lost writes, and
the re-checks that replace the locks a long transaction used to hold."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared import errors
from shared.registry import reads, versions, writes
from shared.rules import kinds
from shared.security.principal import Principal
from shared.storage import engine as engine_module
from shared.storage import sessions
from shared.storage.engine import database
from tests.support import round_trips


def _author(tenant: str) -> Principal:
    return Principal("alice", tenant, frozenset({"author", "reader"}))


def _stored_versions(superuser, tenant: str, entity_id: str) -> list[int]:
    with superuser.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT version FROM log_entries WHERE tenant_id = :t "
                    "AND entity_id = CAST(:e AS uuid) ORDER BY idx"
                ),
                {"t": tenant, "e": entity_id},
            ).scalars()
        )


def test_a_skill_create_is_one_append_statement_and_its_receipt_then_committed(
    database_url, tenant, superuser, monkeypatch
):
    """Counted at the socket, below SQLAlchemy and pg8000: BEGIN and the append (one
    statement) in one burst, then its receipt (signed once the index is known, issue 22)
    stored by the query that commits: two round trips (no tenant set-up, no ping, no
    separate BEGIN, Parse or Describe)."""
    author = _author(tenant)
    writes.create(
        author, "skills", {"name": "warm", "description": "d", "category": "technical"}, "r"
    )
    # A pooled connection idle past IDLE_PING_SECONDS (any of them, on a loaded machine) is
    # pinged first, by design (tested below): not what this test counts.
    monkeypatch.setattr(sessions, "IDLE_PING_SECONDS", 3600.0)
    wire = round_trips.watch(monkeypatch)
    doc = writes.create(
        author, "skills", {"name": "one trip", "description": "d", "category": "technical"}, "r"
    )
    monkeypatch.undo()
    assert wire.round_trips == 2, wire
    begin, append, receipt = wire.statements
    assert begin == "BEGIN" and "plant_append_version(" in append, wire
    assert receipt.startswith("INSERT INTO log_receipts") and receipt.endswith(";\nCOMMIT"), wire
    entity_id = doc.body["identity"]["id"]
    assert _stored_versions(superuser, tenant, entity_id) == [1]


def test_an_idle_pinged_connection_never_swallows_a_write(
    database_url, tenant, superuser, monkeypatch
):
    """The idle check runs a query at checkout; it must not leave a transaction open that
    the one-trip write would then run inside and lose at check-in."""
    monkeypatch.setattr(sessions, "IDLE_PING_SECONDS", 0.0)
    author = _author(tenant)
    ids = [
        writes.create(
            author,
            "skills",
            {"name": f"idle {i}", "description": "d", "category": "technical"},
            "r",
        ).body["identity"]["id"]
        for i in range(5)
    ]
    for entity_id in ids:
        assert _stored_versions(superuser, tenant, entity_id) == [1]


def test_dead_pooled_connections_are_replaced_after_idling(
    database_url, tenant, superuser, monkeypatch
):
    """The server drops every application connection (a restart, a failover): the next
    request after an idle spell gets a fresh connection, not an error."""
    author = _author(tenant)
    writes.create(
        author, "skills", {"name": "before", "description": "d", "category": "technical"}, "r"
    )
    with superuser.connect() as conn:
        killed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    assert killed >= 1
    monkeypatch.setattr(sessions, "IDLE_PING_SECONDS", 0.0)
    doc = writes.create(
        author, "skills", {"name": "after", "description": "d", "category": "technical"}, "r"
    )
    assert _stored_versions(superuser, tenant, doc.body["identity"]["id"]) == [1]


def test_a_stale_head_is_refused_with_40001(database_url, tenant):
    """append_version re-checks the head the caller read: a writer that read v1 while
    another appended v2 must not append on top of it."""
    author = _author(tenant)
    kind = kinds.resolve_kind("skills")
    doc = writes.create(
        author, "skills", {"name": "raced", "description": "d", "category": "technical"}, "r"
    )
    entity_id = doc.body["identity"]["id"]
    with database().transaction(tenant) as conn:
        stale = writes.lock_current(conn, kind, entity_id, None, lock=False)
    writes.amend(
        author,
        "skills",
        entity_id,
        {"description": "first", "amendment_reason": "edit"},
        '"v1"',
        "r",
    )
    with pytest.raises(DBAPIError) as caught, versions.signed_write() as conn:
        versions.append_version(
            conn,
            author,
            kind,
            versions.VersionWrite(
                entity_id=entity_id,
                head=stale.head,
                fields={**stale.fields, "description": "second"},
                status="draft",
                reason="late",
                action="amend",
                request_id="r",
                previous_digest=stale.entry.digest,
            ),
        )
    assert engine_module.sqlstate(caught.value) == "40001"
    with database().transaction(tenant) as conn:
        assert writes.lock_current(conn, kind, entity_id, None).head.version == 2


def test_a_reference_deprecated_between_read_and_write_is_caught(
    database_url, tenant, monkeypatch, certify
):
    """A job role's skill is deprecated after the create read it but before the write: the
    write's pin no longer matches, the operation re-runs, and the re-run sees the deprecated
    skill and refuses with the rule, never a job role on a dead skill."""
    author = _author(tenant)
    skill = writes.create(
        author, "skills", {"name": "pinned", "description": "d", "category": "technical"}, "r"
    )
    skill_id = skill.body["identity"]["id"]
    certify("skills", skill_id)
    original = writes.check_relations
    calls = []

    def race_after_the_read(*args, **kwargs):
        # runs after create's read transaction has ended, before its write
        calls.append(1)
        if len(calls) == 1:
            current = reads.get(author, "skills", skill_id)
            writes.change_status(
                author,
                "skills",
                skill_id,
                {"status": "deprecated", "reason": "race"},
                f'"v{current.version}"',
                "r",
            )
        return original(*args, **kwargs)

    monkeypatch.setattr(writes, "check_relations", race_after_the_read)
    body = {
        "name": "role",
        "description": "d",
        "seniority_level": "junior",
        "required_skills": [skill_id],
    }
    with pytest.raises(errors.ValidationFailed) as caught:
        writes.create(author, "job-roles", body, "r")
    assert len(calls) == 2  # the first attempt was refused by the pin and re-run
    fields = {v["field"] for v in caught.value.extensions["violations"]}
    assert any(f.startswith("required_skills") for f in fields), caught.value.extra


def test_a_taken_unique_key_is_409_naming_the_holder(database_url, tenant):
    author = _author(tenant)
    first = writes.create(
        author, "skills", {"name": "Same", "description": "d", "category": "technical"}, "r"
    )
    with pytest.raises(errors.Conflict) as caught:
        writes.create(
            author, "skills", {"name": "same", "description": "d", "category": "technical"}, "r"
        )
    assert caught.value.extensions["existing_id"] == first.body["identity"]["id"]
