"""The seven-section version document, built by the server from a client's fields.

Sections: identity, lifecycle, versioning, constitutional_alignment, audit_trail, metadata,
relationships. The stored bytes are the document's RFC 8785 form; ``served`` adds the log
index, leaf hash and digest, which are computed from those bytes and so cannot be inside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.errors import IntegrityViolation, LimitExceeded
from shared.integrity import canonical, digests, merkle, tiles
from shared.rules.kinds import KINDS, Kind
from shared.storage.ledger import Encoded

SECTIONS = (
    "identity",
    "lifecycle",
    "versioning",
    "constitutional_alignment",
    "audit_trail",
    "metadata",
    "relationships",
)


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


def build(
    kind: Kind, fields: dict[str, Any], change: Change, entity_id: str | None = None
) -> dict[str, Any]:
    """Place the client's fields and the server's record into the seven sections (of
    ``entity_id``, if given, instead of the change's: one change serves a whole batch)."""
    doc = _server_sections(kind, change, entity_id or change.entity_id)
    for field in kind.fields:
        doc[field.section][field.name] = fields.get(field.name)
    return doc


def _server_sections(kind: Kind, change: Change, entity_id: str) -> dict[str, Any]:
    return {
        "identity": {"id": entity_id, "entity_type": kind.type, "tenant": change.tenant},
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


def client_fields(kind: Kind, doc: dict[str, Any]) -> dict[str, Any]:
    """The client's fields of a stored document (the inverse of ``build``). A derived field
    (a team's agents) is empty whatever the bytes hold: it records nothing
    (``shared.registry.membership``), so no write carries it forward and no rule reads it."""
    return {f.name: [] if f.derived else doc[f.section].get(f.name) for f in kind.fields}


def encode(doc: dict[str, Any]) -> Encoded:
    """The stored form of a document ``build`` made, or of a certificate's DSSE envelope.

    Their values are the server's (strings, integers, None, lists and objects of those, with
    ASCII member names) and the client's validated fields (strings and lists of strings),
    all plain JSON for ``canonical``, except one: the client's ``custom_attributes`` may hold
    any JSON, floats included. Only that one is checked; when it is plain, the whole
    document is serialised by the C encoder alone. A body over 65,535 bytes is refused
    (422 naming the limit): every entry must fit a tile entry bundle's uint16 length.
    """
    free = doc.get("metadata", {}).get("custom_attributes")
    plain = canonical.is_plain(free)
    body, field_hashes = digests.encode_document(
        doc, canonical.dumps_plain if plain else canonical.dumps
    )
    if len(body) > tiles.MAX_ENTRY_BYTES:
        raise LimitExceeded(
            f"the stored entry would be {len(body)} bytes; a log entry is at most "
            f"{tiles.MAX_ENTRY_BYTES} bytes (the uint16 length of a C2SP tile entry bundle)",
            field="",
            limit=tiles.MAX_ENTRY_BYTES,
        )
    return Encoded(
        body=body,
        digest=digests.sha256(body),
        leaf_hash=merkle.leaf_hash(body),
        field_hashes=field_hashes,
    )


# What a DSSE envelope (a certificate entry) holds: no section is an object, so no fields.
ENVELOPE_MEMBERS = ("payload", "payloadType", "signatures")


def register_layouts() -> None:
    """Make every layout the registry writes readable in this process (``digests``): one per
    kind of version document, and the certificate envelope's."""
    template = Change("", "", 1, "", "", "", None, "", "", "", "", [])
    for kind in KINDS.values():
        digests.encode_document(build(kind, {}, template))
    digests.encode_document(dict.fromkeys(ENVELOPE_MEMBERS, ""))


def verified(body: bytes, log_index: int, leaf_hash: bytes, digest: bytes) -> dict[str, Any]:
    """The stored bytes read as a document, once they hash to their row's digest (SHA-256 of
    the bytes) and leaf hash (SHA-256 of 0x00 || bytes): two hashes, cheaper than the parse,
    so that nothing is served that fails its own digest. A 409 naming the index otherwise."""
    if digests.sha256(body) != digest or merkle.leaf_hash(body) != leaf_hash:
        raise IntegrityViolation(
            f"log entry {log_index} does not match its digest", finding="altered",
            log_index=log_index,
        )  # fmt: skip
    try:
        doc = canonical.read(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise IntegrityViolation(
            f"log entry {log_index} is not a document", finding="altered", log_index=log_index
        )
    return doc


def served(body: bytes, log_index: int, leaf_hash: bytes, digest: bytes) -> dict[str, Any]:
    """The document as returned to clients: stored bytes (``verified``) plus where they sit
    in the log."""
    doc = verified(body, log_index, leaf_hash, digest)
    if not all(isinstance(doc.get(section), dict) for section in SECTIONS):
        raise IntegrityViolation(
            f"log entry {log_index} is not a version document", finding="altered",
            log_index=log_index,
        )  # fmt: skip
    doc["audit_trail"]["log_index"] = log_index
    doc["audit_trail"]["leaf_hash"] = digests.b64(leaf_hash)
    doc["audit_trail"]["digest"] = digests.label(digest)
    return doc


register_layouts()
