"""SHA-256 digests of canonical bytes: whole versions, sections and fields.

A section's digest is SHA-256 of the section's RFC 8785 bytes; a field's digest is SHA-256
of that field's value's RFC 8785 bytes. Kept beside each version so an audit can name the
section and field that changed, not just the row.
"""

from __future__ import annotations

import hashlib
from typing import Any

from shared.integrity import canonical

PREFIX = "sha256:"


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def label(digest: bytes) -> str:
    """The printed form of a digest: ``sha256:<hex>``."""
    return PREFIX + digest.hex()


def unlabel(text: str) -> bytes:
    if not text.startswith(PREFIX):
        raise ValueError("digest must start with 'sha256:'")
    raw = bytes.fromhex(text[len(PREFIX) :])
    if len(raw) != 32:
        raise ValueError("a SHA-256 digest has 32 bytes")
    return raw


def encode_document(doc: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """A version document's canonical bytes and its ``field_digests``, from one serialisation:
    each field is serialised once and its bytes reused for its section and the whole
    document (``canonical.join_object``), instead of three times over."""
    sections: dict[str, bytes] = {}
    out: dict[str, Any] = {}
    for section, value in doc.items():
        if isinstance(value, dict):
            members = {name: canonical.dumps(v) for name, v in value.items()}
            body = canonical.join_object(members)
            fields = {name: sha256(raw).hex() for name, raw in members.items()}
        else:
            body, fields = canonical.dumps(value), {}
        sections[section] = body
        out[section] = {"digest": sha256(body).hex(), "fields": fields}
    return canonical.join_object(sections), out


def field_digests(doc: dict[str, Any]) -> dict[str, Any]:
    """``{section: {"digest": hex, "fields": {field: hex}}}`` for a version document."""
    out: dict[str, Any] = {}
    for section, value in doc.items():
        fields = value if isinstance(value, dict) else {}
        out[section] = {
            "digest": sha256(canonical.dumps(value)).hex(),
            "fields": {name: sha256(canonical.dumps(v)).hex() for name, v in fields.items()},
        }
    return out
