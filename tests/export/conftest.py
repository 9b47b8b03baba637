"""A tenant with a realistic small history: created, amended, certified and audited."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from shared import auditing, certification, entities
from shared.auth import Principal
from shared.config import ROOT


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
        entities.create(
            author,
            "skills",
            {"name": f"skill {i}", "description": "d", "category": "technical"},
            str(uuid.uuid4()),
        ).body["identity"]["id"]
        for i in range(4)
    ]
    entities.amend(
        author, "skills", skills[0], {"description": "e", "amendment_reason": "x"}, '"v1"', "r"
    )
    certified = skills[:2]
    for skill in certified:
        certification.certify(certifier, "skills", skill, None, "r")
    auditing.run(auditor, {"mode": "full"})
    role = entities.create(
        author,
        "job-roles",
        {"name": "Dev", "description": "d", "required_skills": certified, "seniority_level": "mid"},
        "r",
    ).body["identity"]["id"]
    return Seeded(tenant, skills, certified, role)
