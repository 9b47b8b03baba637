"""The five kinds of entity, the fields a client may send for each, and their input limits.

A field spec says where the value lives in the seven-section document, so the server (never
the client) decides the document's shape.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from shared.errors import NotFound

AUDIT_RUN = "audit_run"  # the kind of an audit run's report in the log (shared.audit.history)
MAX_NAME = 200
MAX_DESCRIPTION = 5000
MAX_SHORT = 200
MAX_TAGS = 50
MAX_TAG = 64
MAX_ID_LIST = 100
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTES_BYTES = 16 * 1024
MAX_DEPTH = 5
MAX_REASON = 1000

SKILL_CATEGORIES = ("technical", "soft_skill", "domain_expertise", "certification")
SENIORITY_LEVELS = ("junior", "mid", "senior")


@dataclass(frozen=True)
class Field:
    """One client field: its type, whether it is required, and its place in the document."""

    name: str
    type: str  # "text", "enum", "id", "ids", "tags", "attributes"
    section: str
    required: bool = False
    max_length: int = MAX_SHORT
    choices: tuple[str, ...] = ()
    references: str | None = None  # kind the id(s) must name
    # Served, never written: the registry derives it at read time (a team's agents,
    # shared/registry/membership.py); a write naming it is refused, and versions store it empty.
    derived: bool = False


def _common(*, description_required: bool) -> tuple[Field, ...]:
    return (
        Field("name", "text", "identity", required=True, max_length=MAX_NAME),
        Field(
            "description",
            "text",
            "metadata",
            required=description_required,
            max_length=MAX_DESCRIPTION,
        ),
        Field("external_id", "text", "identity"),
        Field("tags", "tags", "metadata"),
        Field("custom_attributes", "attributes", "metadata"),
        Field("governance_agent_id", "id", "relationships", references="agent"),
    )


@dataclass(frozen=True)
class Kind:
    """A kind of entity as the API names it (``slug``) and as documents name it (``type``)."""

    slug: str
    type: str
    fields: tuple[Field, ...]
    immutable: tuple[str, ...] = ()

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


KINDS: dict[str, Kind] = {
    "skills": Kind(
        "skills",
        "skill",
        (
            *_common(description_required=True),
            Field("category", "enum", "metadata", required=True, choices=SKILL_CATEGORIES),
        ),
    ),
    "job-roles": Kind(
        "job-roles",
        "job_role",
        (
            *_common(description_required=True),
            Field("required_skills", "ids", "relationships", required=True, references="skill"),
            Field("seniority_level", "enum", "metadata", required=True, choices=SENIORITY_LEVELS),
            Field("industry_id", "id", "relationships", references="industry"),
        ),
    ),
    "teams": Kind(
        "teams",
        "team",
        (
            *_common(description_required=True),
            Field("job_role_id", "id", "relationships", required=True, references="job_role"),
            Field("industry_id", "id", "relationships", references="industry"),
            Field("agents", "ids", "relationships", references="agent", derived=True),
        ),
    ),
    "agents": Kind(
        "agents",
        "agent",
        (
            *_common(description_required=False),
            Field("skill_id", "id", "relationships", required=True, references="skill"),
            Field("job_role_id", "id", "relationships", required=True, references="job_role"),
            Field("industry_id", "id", "relationships", required=True, references="industry"),
            Field("team_id", "id", "relationships", references="team"),
        ),
        immutable=("industry_id",),
    ),
    "industries": Kind("industries", "industry", _common(description_required=True)),
}

TYPE_TO_SLUG = {kind.type: slug for slug, kind in KINDS.items()}


def kind_for(slug: str) -> Kind | None:
    return KINDS.get(slug)


def parse_uuid(value: Any) -> str | None:
    """The canonical lower-case form of a UUID string, or None if it is not one."""
    if not isinstance(value, str) or len(value) != 36:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def resolve_kind(slug: str) -> Kind:
    kind = kind_for(slug)
    if kind is None:
        raise NotFound(f"unknown kind {slug!r}")
    return kind


def kind_for_type(entity_type: str) -> Kind:
    return KINDS[TYPE_TO_SLUG[entity_type]]
