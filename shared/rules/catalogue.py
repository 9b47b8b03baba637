"""Every rule the registry enforces, with an id, a description, a severity and a remediation.

``stage`` says when a rule runs: ``write`` rules guard every new version, ``certify`` rules
only gate certification (issue: certification and audits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CATALOGUE_VERSION = "2026.12.1"


@dataclass(frozen=True)
class Rule:
    id: str
    kinds: tuple[str, ...]  # entity types, or ("*",)
    stage: str  # "write" or "certify"
    severity: str
    description: str
    remediation: str


@dataclass(frozen=True)
class Violation:
    rule: str
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "field": self.field, "message": self.message}


ALL = ("*",)

RULES: tuple[Rule, ...] = (
    Rule(
        "INPUT-01",
        ALL,
        "write",
        "error",
        "Required fields are present.",
        "Send the field named in the violation.",
    ),
    Rule(
        "INPUT-02",
        ALL,
        "write",
        "error",
        "Fields have the documented JSON type.",
        "Send the field with the type the API documents.",
    ),
    Rule(
        "INPUT-03",
        ALL,
        "write",
        "error",
        "Fields respect the length, count and depth limits.",
        "Shorten the value or send fewer items.",
    ),
    Rule(
        "INPUT-04",
        ALL,
        "write",
        "error",
        "Only documented fields are sent; digests, versions, indices and timestamps are the "
        "server's.",
        "Remove the field; the server computes it.",
    ),
    Rule(
        "INPUT-05",
        ALL,
        "write",
        "error",
        "Identifiers are UUIDs.",
        "Send the id exactly as the registry returned it.",
    ),
    Rule(
        "INPUT-06",
        ALL,
        "write",
        "error",
        "An amendment changes at least one field; an amendment_reason alone is not one.",
        "Send the fields to change, or nothing: the current version stands.",
    ),
    Rule(
        "LIFECYCLE-01",
        ALL,
        "write",
        "error",
        "Only certification sets the status 'certified'.",
        "Ask a certifier to certify the entity (POST /certify/{kind}/{id}).",
    ),
    Rule(
        "L0-01",
        ALL,
        "certify",
        "error",
        "Accountable governance: every version names who made it, and a governance agent, "
        "if named, is a live agent of this tenant.",
        "Amend the entity as an identified author, naming a live governance agent.",
    ),
    Rule(
        "L0-02",
        ALL,
        "certify",
        "error",
        "Complete amendment record: every version after the first has a reason and an author.",
        "Amend again with an amendment_reason.",
    ),
    Rule(
        "L0-03",
        ALL,
        "certify",
        "error",
        "Append-only link: each version's bytes match its digest and it links to the digest "
        "of the version before it.",
        "Run an audit of the entity (GET /audit/entities/{kind}/{id}); restore from the log.",
    ),
    Rule(
        "L0-04",
        ALL,
        "certify",
        "error",
        "Single current version: the entity's head is its latest version, which supersedes "
        "all earlier ones.",
        "Run an audit; the head was changed outside the registry.",
    ),
    Rule(
        "L0-05",
        ALL,
        "certify",
        "error",
        "Certification gate for active use: every entity this version uses is certified.",
        "Certify the referenced entities first.",
    ),
    Rule(
        "L0-06",
        ALL,
        "certify",
        "error",
        "Four eyes on content: no certifier certifies content they wrote or amended since it "
        "was last certified (status changes are not content).",
        "Ask a certifier who wrote none of the content since its last certification.",
    ),
    Rule(
        "INTEGRITY-01",
        ALL,
        "certify",
        "error",
        "The version is included in a signed checkpoint of the tenant's log.",
        "Seal the log (POST /log/seal) and run an audit.",
    ),
    Rule(
        "L1-REF-01",
        ALL,
        "write",
        "error",
        "Every referenced entity exists in this tenant and is of the expected kind.",
        "Reference an existing entity of the expected kind.",
    ),
    Rule(
        "L1-REF-02",
        ALL,
        "write",
        "error",
        "No new version references a suspended or deprecated entity.",
        "Reference a live entity, or reinstate the referenced one first.",
    ),
    Rule(
        "L1-SKILL-01",
        ("skill",),
        "write",
        "error",
        "A skill's category is technical, soft_skill, domain_expertise or certification.",
        "Choose one of the four categories.",
    ),
    Rule(
        "L1-SKILL-02",
        ("skill",),
        "write",
        "error",
        "A skill's name is unique among the tenant's live skills.",
        "Choose another name, or deprecate the existing skill first.",
    ),
    Rule(
        "L1-JOBROLE-01",
        ("job_role",),
        "write",
        "error",
        "A job role requires at least one skill.",
        "List at least one required skill.",
    ),
    Rule(
        "L1-JOBROLE-02",
        ("job_role",),
        "write",
        "error",
        "A job role lists each required skill once.",
        "Remove the duplicate skill ids.",
    ),
    Rule(
        "L1-JOBROLE-03",
        ("job_role",),
        "write",
        "error",
        "Every required skill is certified.",
        "Certify the skill before requiring it.",
    ),
    Rule(
        "L1-JOBROLE-04",
        ("job_role",),
        "write",
        "error",
        "Seniority level is junior, mid or senior.",
        "Choose one of the three levels.",
    ),
    Rule(
        "L1-TEAM-01",
        ("team",),
        "certify",
        "error",
        "A team has at least one agent before it is certified.",
        "Assign an agent to the team (POST /registry/agents/{id}/team).",
    ),
    Rule(
        "L1-AGENT-01",
        ("agent",),
        "write",
        "error",
        "An agent's skill is one of its job role's required skills.",
        "Pick a skill the job role requires, or add it to the job role.",
    ),
    Rule(
        "L1-AGENT-02",
        ("agent",),
        "write",
        "error",
        "An agent's industry is fixed after creation.",
        "Create a new agent for the other industry.",
    ),
    Rule(
        "L1-AGENT-03",
        ("agent",),
        "write",
        "error",
        "(skill, job role, team) is unique among the tenant's live agents.",
        "Reuse the existing agent, or deprecate it first.",
    ),
)

BY_ID = {rule.id: rule for rule in RULES}


def rules_for(entity_type: str, stage: str) -> list[Rule]:
    return [r for r in RULES if r.stage == stage and (r.kinds == ALL or entity_type in r.kinds)]
