"""Registry test client and helpers: each test has its own tenant and tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from shared.config import ROOT


@pytest.fixture(scope="session")
def app(database_url: str):
    import functions_framework

    return functions_framework.create_app(target="registry", source=str(ROOT / "main.py"))


@dataclass
class Api:
    client: Any
    tenant: str
    headers: dict[str, str]

    def post(self, path: str, body: Any = None, **headers: str):
        return self.client.post(f"/registry{path}", json=body, headers={**self.headers, **headers})

    def patch(self, path: str, body: Any, **headers: str):
        return self.client.patch(f"/registry{path}", json=body, headers={**self.headers, **headers})

    def get(self, path: str, **headers: str):
        return self.client.get(f"/registry{path}", headers={**self.headers, **headers})

    def skill(self, name: str, category: str = "technical") -> str:
        response = self.post("/skills", {"name": name, "description": "d", "category": category})
        assert response.status_code == 201, response.json
        return response.json["identity"]["id"]


@pytest.fixture
def api(app, tenant, make_token) -> Api:
    token = make_token(tenant, "author", "reader", subject="alice")
    return Api(app.test_client(), tenant, {"Authorization": f"Bearer {token}"})


@pytest.fixture
def certify(tenant):
    from shared.registry import certification
    from shared.security.principal import Principal

    carol = Principal("carol", tenant, frozenset({"certifier"}))

    def run(slug: str, entity_id: str) -> None:
        certification.certify(carol, slug, entity_id, None, "r")

    return run
