"""The registry function through functions_framework's test client, and callers' headers.

These suites complement tests/registry (which holds the registry's main happy paths and
error codes); here: the edges a client can reach that those leave out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shared.config import ROOT

Headers = dict[str, str]


@pytest.fixture(scope="session")
def registry_app(database_url: str):
    import functions_framework

    return functions_framework.create_app(target="registry", source=str(ROOT / "main.py"))


@pytest.fixture
def registry_client(registry_app):
    return registry_app.test_client()


@pytest.fixture
def bearer(make_token) -> Callable[..., Headers]:
    """``bearer(tenant, *roles)`` -> an Authorization header for that caller."""

    def make(tenant: str, *roles: str, subject: str = "alice") -> Headers:
        return {"Authorization": f"Bearer {make_token(tenant, *roles, subject=subject)}"}

    return make


@pytest.fixture
def author(bearer, tenant) -> Headers:
    return bearer(tenant, "author", "reader")


@pytest.fixture
def reader(bearer, tenant) -> Headers:
    return bearer(tenant, "reader")


@pytest.fixture
def create(registry_client, author) -> Callable[..., dict[str, Any]]:
    """``create(slug, **fields)`` -> the 201 document of a new entity in the test's tenant."""

    def make(slug: str, **fields: Any) -> dict[str, Any]:
        response = registry_client.post(f"/registry/{slug}", json=fields, headers=author)
        assert response.status_code == 201, response.json
        return response.json

    return make


@pytest.fixture
def skill(create) -> Callable[..., str]:
    """``skill(name)`` -> the id of a new draft skill."""

    def make(name: str, category: str = "technical") -> str:
        return create("skills", name=name, description="d", category=category)["identity"]["id"]

    return make


@pytest.fixture
def certified_skill(skill, tenant) -> Callable[[str], str]:
    """``certified_skill(name)`` -> the id of a new skill certified by another person
    (only certification may set ``certified``)."""
    from shared.registry import certification
    from shared.security.principal import Principal

    carol = Principal("carol", tenant, frozenset({"certifier"}))

    def make(name: str) -> str:
        skill_id = skill(name)
        certification.certify(carol, "skills", skill_id, None, "test")
        return skill_id

    return make
