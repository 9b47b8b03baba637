"""The insider's matrix: a small tenant built fresh for each attack, and the superuser that
attacks it. 15 skills; log entries 0-14 their versions 1, 15 a map commit (checkpoint 16),
16-27 versions 2 of skills 0-11, 28-30 skill 0's versions 3-5, 31 a map commit (checkpoint
32), 32-33 skill 1's certificate and certified version 3, 34 a map commit (35), 35-36 the same
for skill 2, 37 a map commit (38), 38 the clean audit's report and 39 skill 12's version 2,
both acknowledged but not sealed: 40 entries."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from shared import audit, tlog
from shared.registry import certification, writes
from shared.security.principal import Principal
from tests.support.tampering import as_insider

ENTITIES = 15


@dataclass
class Tenant:
    """A fixture tenant: its principals, its skills (``skills[0]`` at version 5, ``[1]`` and
    ``[2]`` certified) and what the attacks and expectations read of it."""

    name: str
    author: Principal
    auditor: Principal
    superuser: Engine
    skills: list[str]
    baseline: dict[str, Any] = field(default_factory=dict)  # the clean audit run

    def audit(self, mode: str) -> dict[str, Any]:
        run, started = audit.run(self.auditor, {"mode": mode})
        assert started and run["status"] == "completed", run
        return run

    def one(self, sql: str, **params: Any) -> Any:
        """One row read as the superuser (the tenant is ``:t``)."""
        with self.superuser.connect() as conn:
            return conn.execute(text(sql), {"t": self.name, **params}).one()

    def index(self, entity: str, version: int, entry_type: str = "version") -> int:
        """The log index of an entity's version (or the certificate of that version)."""
        return int(
            self.one(
                "SELECT idx FROM log_entries WHERE tenant_id = :t AND entity_id = CAST(:e AS uuid)"
                " AND version = :v AND entry_type = :y",
                e=entity,
                v=version,
                y=entry_type,
            )[0]
        )

    def size(self) -> int:
        return int(self.one("SELECT size FROM log_heads WHERE tenant_id = :t")[0])


def build(superuser: Engine, name: str) -> Tenant:
    """The fixture tenant, written through the registry's own operations."""
    author = Principal("alice", name, frozenset({"author"}))
    certifier = Principal("carol", name, frozenset({"certifier"}))
    auditor = Principal("audrey", name, frozenset({"auditor"}))
    skills = [
        writes.create(
            author,
            "skills",
            {"name": f"skill {i}", "description": f"does {i}", "category": "technical"},
            str(uuid.uuid4()),
        ).body["identity"]["id"]
        for i in range(ENTITIES)
    ]
    tlog.seal(name)
    amend = functools.partial(writes.amend, author, "skills")
    for i, entity in enumerate(skills[:12]):
        amend(entity, {"description": f"does {i} well", "amendment_reason": "r"}, '"v1"', "r")
    for version in (2, 3, 4):
        change = {"description": f"v{version + 1}", "amendment_reason": "r"}
        amend(skills[0], change, f'"v{version}"', "r")
    for entity in skills[1:3]:
        certification.certify(certifier, "skills", entity, None, "r")
    tenant = Tenant(name, author, auditor, superuser, skills)
    tenant.baseline = tenant.audit("full")
    assert tenant.baseline["findings"] == [], tenant.baseline["findings"]
    # an acknowledged write no checkpoint covers yet (skill 12's version 2, at the tail)
    amend(skills[12], {"description": "does 12 well", "amendment_reason": "r"}, '"v1"', "r")
    return tenant


@pytest.fixture
def fixture_tenant(database_url: str, superuser: Engine, tenant: str) -> Tenant:
    """A fresh fixture tenant for one attack."""
    return build(superuser, tenant)


@pytest.fixture
def attack(superuser: Engine) -> Callable[..., None]:
    """SQL run as the insider: a superuser with triggers and row-level security out of the
    way."""
    return functools.partial(as_insider, superuser)
