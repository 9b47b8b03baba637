"""A tenant with a realistic small history: created, amended, certified and audited."""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from shared import audit, cli
from shared.config import ROOT
from shared.registry import certification, writes
from shared.security.principal import Principal
from shared.tlog import keys


@dataclass
class Seeded:
    tenant: str
    skills: list[str]
    certified: list[str]
    role: str


@pytest.fixture
def export_client(database_url: str):
    import functions_framework

    return functions_framework.create_app(
        target="export", source=str(ROOT / "main.py")
    ).test_client()


@pytest.fixture
def seeded(database_url: str, tenant: str) -> Seeded:
    author = Principal("alice", tenant, frozenset({"author"}))
    certifier = Principal("carol", tenant, frozenset({"certifier"}))
    auditor = Principal("audrey", tenant, frozenset({"auditor"}))
    skills = [
        writes.create(
            author,
            "skills",
            {"name": f"skill {i}", "description": "d", "category": "technical"},
            str(uuid.uuid4()),
        ).body["identity"]["id"]
        for i in range(4)
    ]
    writes.amend(
        author, "skills", skills[0], {"description": "e", "amendment_reason": "x"}, '"v1"', "r"
    )
    certified = skills[:2]
    for skill in certified:
        certification.certify(certifier, "skills", skill, None, "r")
    role = writes.create(
        author,
        "job-roles",
        {"name": "Dev", "description": "d", "required_skills": certified, "seniority_level": "mid"},
        "r",
    ).body["identity"]["id"]
    audit.run(auditor, {"mode": "full"})  # its report is the last entry (index 12)
    return Seeded(tenant, skills, certified, role)


@pytest.fixture
def export_bundle(export_client, make_token) -> Callable[..., dict[str, Any]]:
    """A bundle of ``tenant`` through the real export route (``query``: kind=, entity=)."""

    def export(tenant: str, query: str = "") -> dict[str, Any]:
        token = make_token(tenant, "auditor")
        response = export_client.get(
            f"/export/bundle{query}", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.get_data()
        return json.loads(response.get_data())

    return export


@pytest.fixture
def plant_verify(tmp_path) -> Callable[..., tuple[int, str]]:
    """Run `plant verify` on a bundle (a document, or the file's bytes as an attacker wrote
    them), pinned to the registry's active key unless ``pinned=False``; (exit code, stdout)."""

    def run(data: Any, *extra: str, pinned: bool = True) -> tuple[int, str]:
        path = tmp_path / "bundle.json"
        path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
        args = ["verify", str(path), *extra]
        if pinned:
            args += ["--key", keys.keyring().active.vkey]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cli.main(args)
        return code, out.getvalue()

    return run
