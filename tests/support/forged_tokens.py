"""What the token attack tests forge with: the local issuer's claims, unpadded base64url, and
the server's own signing key (read from where ``plant`` keeps it)."""

from __future__ import annotations

import base64
import json
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.config import settings
from shared.security.local_tokens import jwt_key_path

ISSUER, AUDIENCE = "plant-local", "plant-registry"


def b64(data: dict | bytes) -> str:
    """A JWT segment: base64url without padding (of JSON, for a dict)."""
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def valid_claims(tenant: str, now: int | None = None, **over: object) -> dict:
    """Valid claims for ``tenant`` issued at ``now`` (default: this second), with ``over``
    replacing any of them."""
    now = int(time.time()) if now is None else now
    out = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "mallory",
        "tenant": tenant,
        "roles": ["author"],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    out.update(over)
    return out


def server_key() -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(jwt_key_path(settings()).read_bytes(), None)
    assert isinstance(key, Ed25519PrivateKey)
    return key
