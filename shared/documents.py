"""The seven-section version document, built by the server from a client's fields.

Sections: identity, lifecycle, versioning, constitutional_alignment, audit_trail, metadata,
relationships. The stored bytes are the document's RFC 8785 form; ``served`` adds the log
index, leaf hash and digest, which are computed from those bytes and so cannot be inside them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.integrity import canonical, digests, merkle
from shared.kinds import Kind

SECTIONS = (
    "identity",
    "lifecycle",
    "versioning",
    "constitutional_alignment",
    "audit_trail",
    "metadata",
    "relationships",
)


def now_text() -> str:
    """UTC time as RFC 3339 with milliseconds, the form every document uses."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Change:
    """Who changed what, and why: the parts of a version that are not the client's fields."""

    tenant: str
    entity_id: str
    version: int
    status: str
    created_at: str
    updated_at: str
    previous_digest: str | None
    amendment_reason: str
    actor: str
    request_id: str
    action: str
    rule_results: list[dict[str, Any]]
    certification: dict[str, Any] | None = None


def build(kind: Kind, fields: dict[str, Any], change: Change) -> dict[str, Any]:
    """Place the client's fields and the server's record into the seven sections."""
    doc: dict[str, Any] = {
        "identity": {"id": change.entity_id, "entity_type": kind.type, "tenant": change.tenant},
        "lifecycle": {
            "status": change.status,
            "created_at": change.created_at,
            "updated_at": change.updated_at,
            "effective_from": change.updated_at,
            "effective_to": None,
        },
        "versioning": {
            "version": change.version,
            "previous_digest": change.previous_digest,
            "amendment_reason": change.amendment_reason,
            "amended_by": change.actor,
        },
        "constitutional_alignment": {
            "rule_results": change.rule_results,
            "certification": change.certification,
        },
        "audit_trail": {
            "actor": change.actor,
            "request_id": change.request_id,
            "action": change.action,
        },
        "metadata": {},
        "relationships": {},
    }
    for field in kind.fields:
        doc[field.section][field.name] = fields.get(field.name)
    return doc


def client_fields(kind: Kind, doc: dict[str, Any]) -> dict[str, Any]:
    """The client's fields of a stored document (the inverse of ``build``)."""
    return {f.name: doc[f.section].get(f.name) for f in kind.fields}


@dataclass(frozen=True)
class Encoded:
    """A document's stored form: canonical bytes, their digest and per-field digests."""

    body: bytes
    digest: bytes
    leaf_hash: bytes
    field_digests: dict[str, Any]


def encode(doc: dict[str, Any]) -> Encoded:
    body, field_digests = digests.encode_document(doc)
    return Encoded(
        body=body,
        digest=digests.sha256(body),
        leaf_hash=merkle.leaf_hash(body),
        field_digests=field_digests,
    )


def served(body: bytes, log_index: int, leaf_hash: bytes, digest: bytes) -> dict[str, Any]:
    """The document as returned to clients: stored bytes plus where they sit in the log."""
    doc = canonical.read(body)
    doc["audit_trail"]["log_index"] = log_index
    doc["audit_trail"]["leaf_hash"] = base64.b64encode(leaf_hash).decode()
    doc["audit_trail"]["digest"] = digests.label(digest)
    return doc
