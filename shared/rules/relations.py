"""L1 rules that look at other entities: references, certification of required skills,
an agent's skill belonging to its job role, and the fixed industry of an agent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.rules import names
from shared.rules.catalogue import Violation
from shared.rules.kinds import Kind

NOT_LIVE = ("suspended", "deprecated")
# References that express membership, not use: not gated on certification (else a team and
# its agents could never be certified, each waiting for the other).
MEMBERSHIP = {("agent", "team_id"), ("team", "agents")}


@dataclass(frozen=True)
class Ref:
    """What a rule may know about a referenced entity: its type, status and client fields."""

    entity_id: str
    type: str
    status: str
    fields: dict[str, Any]


def referenced_ids(kind: Kind, fields: dict[str, Any]) -> set[str]:
    ids: set[str] = set()
    for field in kind.fields:
        value = fields.get(field.name)
        if field.references is None or value is None:
            continue
        if isinstance(value, list):
            ids.update(v for v in value if isinstance(v, str))
        elif isinstance(value, str):
            ids.add(value)
    return ids


def uncertified_uses(kind: Kind, fields: dict[str, Any], refs: dict[str, Ref]) -> list[str]:
    """L0-05's failures: ``field=id`` for each entity the version uses (membership aside)
    that is not certified. Certification refuses them; the audit reports them on a
    certified version (the certification cascade should have moved it)."""
    uncertified = []
    for field in kind.fields:
        if field.references is None or (kind.type, field.name) in MEMBERSHIP:
            continue
        value = fields.get(field.name)
        for ref_id in value if isinstance(value, list) else [value] if value else []:
            ref = refs.get(ref_id)
            if ref is None or ref.status != "certified":
                uncertified.append(f"{field.name}={ref_id}")
    return uncertified


def unique_key(kind: Kind, fields: dict[str, Any]) -> str | None:
    """What must be unique among the tenant's live entities of this kind: two keys collide
    when they share a reading (``shared.rules.names.readings``); a skill's name is read as people
    read it (``shared.rules.names``)."""
    if kind.type == "skill":
        return names.unique_key(str(fields["name"]))
    if kind.type == "agent":
        return f"{fields['skill_id']}|{fields['job_role_id']}|{fields.get('team_id') or '-'}"
    return None


def check_relations(
    kind: Kind,
    fields: dict[str, Any],
    previous: dict[str, Any] | None,
    refs: dict[str, Ref],
    self_id: str | None = None,
) -> list[Violation]:
    """Every L1 write rule that needs other entities; returns all violations."""
    problems: list[Violation] = []
    for field in kind.fields:
        if field.references is None:
            continue
        value = fields.get(field.name)
        items = value if isinstance(value, list) else [value] if value else []
        for i, ref_id in enumerate(items):
            where = f"{field.name}[{i}]" if isinstance(value, list) else field.name
            ref = refs.get(ref_id)
            if ref is None or ref.type != field.references or ref_id == self_id:
                problems.append(
                    Violation("L1-REF-01", where, f"no {field.references} {ref_id} in this tenant")
                )
            elif ref.status in NOT_LIVE:
                problems.append(
                    Violation("L1-REF-02", where, f"{field.references} {ref_id} is {ref.status}")
                )
    if kind.type == "job_role":
        problems += _job_role(fields, refs)
    if kind.type == "agent":
        problems += _agent(fields, previous, refs)
    return problems


def _job_role(fields: dict[str, Any], refs: dict[str, Ref]) -> list[Violation]:
    problems = []
    skills = [s for s in fields.get("required_skills") or [] if s]
    if fields.get("required_skills") == []:
        problems.append(Violation("L1-JOBROLE-01", "required_skills", "needs at least one skill"))
    seen: set[str] = set()
    for i, skill_id in enumerate(skills):
        if skill_id in seen:
            problems.append(
                Violation("L1-JOBROLE-02", f"required_skills[{i}]", f"{skill_id} is listed twice")
            )
        seen.add(skill_id)
        ref = refs.get(skill_id)
        if ref is not None and ref.type == "skill" and ref.status != "certified":
            problems.append(
                Violation(
                    "L1-JOBROLE-03",
                    f"required_skills[{i}]",
                    f"skill {skill_id} is {ref.status}, not certified",
                )
            )
    return problems


def _agent(
    fields: dict[str, Any], previous: dict[str, Any] | None, refs: dict[str, Ref]
) -> list[Violation]:
    problems = []
    job_role = refs.get(fields.get("job_role_id") or "")
    skill_id = fields.get("skill_id")
    is_role = job_role is not None and job_role.type == "job_role"
    required = (job_role.fields.get("required_skills") or []) if job_role and is_role else []
    if is_role and skill_id and skill_id not in required:
        assert job_role is not None
        problems.append(
            Violation(
                "L1-AGENT-01",
                "skill_id",
                f"skill {skill_id} is not required by job role {job_role.entity_id}",
            )
        )
    if previous is not None and previous.get("industry_id") != fields.get("industry_id"):
        problems.append(Violation("L1-AGENT-02", "industry_id", "cannot change after creation"))
    return problems
