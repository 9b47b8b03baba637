"""The local (development and test) token scheme.

Locally and in tests the functions verify Ed25519-signed JWTs (``alg: EdDSA`` only, so
``none`` and HMAC/RSA confusion are refused by construction) issued by ``plant token``.
In the cloud the identity comes from Google (see shared/security/google_identity.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.config import Settings
from shared.errors import ConfigurationError, Unauthenticated
from shared.security.principal import Principal, bearer, principal_from_claims
from shared.security.token_cache import TokenCache, Verified

MAX_TOKEN_TTL = 24 * 3600
LEEWAY_SECONDS = 5


def jwt_key_path(cfg: Settings) -> Path:
    return cfg.jwt_key_file or cfg.keys_dir / "jwt-ed25519.pem"


def ensure_jwt_key(cfg: Settings) -> Path:
    """Create the development token key if there is none (local mode only)."""
    path = jwt_key_path(cfg)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pem)
        tmp.chmod(0o600)
        tmp.replace(path)
    return path


def _load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the token key at {path}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError("the token key must be Ed25519")
    return key


class LocalTokens:
    """Issue and verify locally signed tokens (EdDSA JWT, fixed issuer and audience).

    A token that verified is kept (``shared.security.token_cache``) so that its next uses cost a
    hash and a look-up, still refused once it expires; the key, issuer and audience it was
    checked against are this object's and never change.
    """

    def __init__(self, private_key: Ed25519PrivateKey, issuer: str, audience: str) -> None:
        self._private = private_key
        self.public_key: Ed25519PublicKey = private_key.public_key()
        self.issuer = issuer
        self.audience = audience
        self._verified = TokenCache()

    @classmethod
    def from_settings(cls, cfg: Settings) -> LocalTokens:
        return cls(_load_private(jwt_key_path(cfg)), cfg.token_issuer, cfg.token_audience)

    def issue(self, subject: str, tenant: str, roles: Iterable[str], ttl: int = 3600) -> str:
        roles = list(roles)
        try:
            principal_from_claims(subject, tenant, roles)  # refuse to mint what we would reject
        except Unauthenticated as exc:
            raise ValueError(exc.detail.replace("token has no", "need a")) from exc
        if not 0 < ttl <= MAX_TOKEN_TTL:
            raise ValueError(f"ttl must be between 1 and {MAX_TOKEN_TTL} seconds")
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "tenant": tenant,
            "roles": roles,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self._private, algorithm="EdDSA")

    def authenticate(self, headers: Any) -> Principal:
        token = bearer(headers)
        key = self._verified.key(token)
        principal = self._verified.get(key)
        if principal is None:
            entry = self._verify(token)
            self._verified.put(key, entry)
            principal = entry.principal
        return principal

    def _verify(self, token: str) -> Verified:
        """Check signature and every claim (401 naming what failed)."""
        try:
            claims = jwt.decode(
                token,
                self.public_key,
                algorithms=["EdDSA"],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub"]},
                leeway=LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise Unauthenticated("token not yet valid") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated("token audience is wrong") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthenticated("token issuer is wrong") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("token is invalid") from exc
        principal = principal_from_claims(
            claims.get("sub"), claims.get("tenant"), claims.get("roles")
        )
        # PyJWT refuses iat or nbf > now + leeway and exp <= now - leeway, reading each with
        # int() (it has checked all three are there and readable): the same instants, as an
        # interval (exact: integers, and now +- 5 s is a float with no rounding).
        not_before = max(int(claims["iat"]), int(claims["nbf"]))
        return Verified(principal, not_before - LEEWAY_SECONDS, int(claims["exp"]) + LEEWAY_SECONDS)
