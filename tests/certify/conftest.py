"""Fixtures for certification: people with separate duties and a certify client."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from shared.config import ROOT
from shared.registry import writes
from shared.security.principal import Principal


@dataclass
class Team:
    tenant: str
    author: Principal
    certifier: Principal

    def create(self, slug: str, **fields: Any) -> str:
        return writes.create(self.author, slug, fields, str(uuid.uuid4())).body["identity"]["id"]

    def skill(self, name: str | None = None) -> str:
        return self.create(
            "skills",
            name=name or f"skill {uuid.uuid4().hex[:6]}",
            description="d",
            category="technical",
        )


@pytest.fixture
def people(database_url: str, tenant: str) -> Team:
    return Team(
        tenant,
        Principal("alice", tenant, frozenset({"author"})),
        Principal("carol", tenant, frozenset({"certifier"})),
    )


@pytest.fixture
def certify_client(database_url: str):
    import functions_framework

    return functions_framework.create_app(
        target="certify", source=str(ROOT / "main.py")
    ).test_client()
