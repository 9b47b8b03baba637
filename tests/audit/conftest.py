"""Fixtures for audits: a tenant with a little history, and the attacker's superuser session."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from shared import audit, config, tlog
from shared.registry import certification, versions, writes
from shared.security.principal import Principal
from shared.storage import copyread
from tests.support.tampering import as_insider


@dataclass
class History:
    tenant: str
    author: Principal
    certifier: Principal
    auditor: Principal
    skills: list[str]

    def audit(self, mode: str = "full") -> dict[str, Any]:
        run, _ = audit.run(self.auditor, {"mode": mode})
        assert run["status"] == "completed", run
        return run

    def amend(self, entity_id: str, version: int, description: str) -> versions.Document:
        """A skill's version ``version`` amended with a new description."""
        return writes.amend(
            self.author,
            "skills",
            entity_id,
            {"description": description, "amendment_reason": "more"},
            f'"v{version}"',
            "r",
        )


def principals(tenant: str) -> tuple[Principal, Principal, Principal]:
    return (
        Principal("alice", tenant, frozenset({"author"})),
        Principal("carol", tenant, frozenset({"certifier"})),
        Principal("audrey", tenant, frozenset({"auditor"})),
    )


@pytest.fixture
def history(database_url: str, tenant: str) -> History:
    """Three skills (one amended, one certified), sealed and audited clean."""
    return make_history(tenant)


def make_history(tenant: str) -> History:
    """The ``history`` fixture's tenant, for tests that first choose the entities' ids."""
    author, certifier, auditor = principals(tenant)
    ids = []
    for name in ("Python", "Go", "Rust"):
        doc = writes.create(
            author,
            "skills",
            {"name": name, "description": f"writes {name}", "category": "technical"},
            str(uuid.uuid4()),
        )
        ids.append(doc.body["identity"]["id"])
    writes.amend(
        author,
        "skills",
        ids[0],
        {"description": "writes idiomatic Python", "amendment_reason": "clarify"},
        '"v1"',
        "r",
    )
    certification.certify(certifier, "skills", ids[1], None, "r")
    tlog.seal(tenant)
    return History(tenant, author, certifier, auditor, ids)


@pytest.fixture
def entry_indices(superuser: Engine) -> Callable[[str, str], list[int]]:
    """The log indexes of an entity's entries (versions and certificates) in order, read
    as a superuser."""

    def read(tenant: str, entity_id: str) -> list[int]:
        with superuser.connect() as conn:
            return [
                int(r[0])
                for r in conn.execute(
                    text(
                        "SELECT idx FROM log_entries WHERE tenant_id = :t "
                        "AND entity_id = CAST(:e AS uuid) ORDER BY idx"
                    ),
                    {"t": tenant, "e": entity_id},
                )
            ]

    return read


@pytest.fixture
def attack(superuser: Engine) -> Callable[..., None]:
    """Run SQL as a superuser with triggers and row-level security out of the way."""

    return functools.partial(as_insider, superuser)


@pytest.fixture
def sent_statements() -> Callable[[], AbstractContextManager[list[str]]]:
    """A context manager giving the statements the application's engine sends while it is
    open, in order."""

    @contextmanager
    def recording() -> Iterator[list[str]]:
        from shared.storage.engine import database

        sent: list[str] = []

        def record(conn, cursor, statement, params, context, many) -> None:
            sent.append(statement)

        event.listen(database().engine, "before_cursor_execute", record)
        try:
            yield sent
        finally:
            event.remove(database().engine, "before_cursor_execute", record)

    return recording


@pytest.fixture
def pooled(monkeypatch: pytest.MonkeyPatch) -> Callable[[ModuleType, str], list[Any]]:
    """Ranges of two entries and every full audit's passes handed to the workers (when it
    has more than one); ``pooled(module, name)`` records, in order, the parts that
    ``module.<name>`` hands back to the audit."""
    monkeypatch.setattr(copyread, "RANGE", 2)
    monkeypatch.setenv("PLANT_AUDIT_PARALLEL_FROM", "0")

    def record(module: ModuleType, name: str) -> list[Any]:
        parts: list[Any] = []
        handed = getattr(module, name)

        def recorded(*args: Any) -> Iterator[Any]:
            for part in handed(*args):
                parts.append(part)
                yield part

        monkeypatch.setattr(module, name, recorded)
        return parts

    yield record
    config.settings.cache_clear()


@pytest.fixture
def full_audit(monkeypatch: pytest.MonkeyPatch) -> Callable[[History, int], dict[str, Any]]:
    """A full audit of the history with this many worker processes (1: all in its own)."""

    def run(history: History, workers: int) -> dict[str, Any]:
        monkeypatch.setenv("PLANT_AUDIT_WORKERS", str(workers))
        config.settings.cache_clear()
        return history.audit("full")

    yield run
    config.settings.cache_clear()


@pytest.fixture
def last_run_status(superuser: Engine) -> Callable[[str], str]:
    """The status of a tenant's newest audit run, read as a superuser."""

    def read(tenant: str) -> str:
        with superuser.connect() as conn:
            return conn.execute(
                text(
                    "SELECT status FROM audit_runs WHERE tenant_id = :t "
                    "ORDER BY started_at DESC LIMIT 1"
                ),
                {"t": tenant},
            ).scalar_one()

    return read
