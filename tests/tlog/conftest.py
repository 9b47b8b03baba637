"""Fixtures for the log function: a test client and a tenant with entries."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from shared.config import ROOT
from shared.registry import writes
from shared.security.principal import Principal


@pytest.fixture
def log_client(database_url: str):
    import functions_framework

    return functions_framework.create_app(target="log", source=str(ROOT / "main.py")).test_client()


@pytest.fixture
def fill(database_url: str) -> Callable[[str, int], list[str]]:
    """Create ``n`` skills in a tenant; return their ids."""

    def run(tenant: str, n: int) -> list[str]:
        author = Principal("alice", tenant, frozenset({"author"}))
        return [
            writes.create(
                author,
                "skills",
                {
                    "name": f"skill {uuid.uuid4().hex[:8]}",
                    "description": "d",
                    "category": "technical",
                },
                "r",
            ).body["identity"]["id"]
            for _ in range(n)
        ]

    return run


@pytest.fixture
def stored_leaves(superuser: Engine) -> Callable[[str], list[bytes]]:
    """A tenant's ``leaf_hash`` column in index order, read as a superuser."""

    def read(tenant: str) -> list[bytes]:
        with superuser.connect() as conn:
            return [
                bytes(r[0])
                for r in conn.execute(
                    text("SELECT leaf_hash FROM log_entries WHERE tenant_id = :t ORDER BY idx"),
                    {"t": tenant},
                )
            ]

    return read
