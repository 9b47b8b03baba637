"""Google identities in the cloud: who called, mapped to a tenant and roles by configuration.

Two modes, chosen by configuration and never used locally:

- ``PlatformIdentity``: the function is private (IAM invoker only). Cloud Run has verified the
  caller's Google ID token and forwards it with its signature replaced by
  ``SIGNATURE_REMOVED_BY_GOOGLE``; the claims are trusted because the platform checked them.
  Refuses to exist unless ``PLANT_ENV=cloud`` and ``PLANT_TRUST_PLATFORM_IDENTITY`` are set.
- ``GoogleTokenVerifier``: the function is reachable without IAM, so it verifies the ID
  token itself with google-auth (signature against Google's certificates, issuer, audience,
  expiry).

The identity map (``PLANT_IDENTITY_MAP``, a secret) is JSON: ``{"email": {"tenant": "...",
"roles": ["auditor", ...]}}``; an email not in it is refused with 403.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from shared.auth import ROLES, TENANT_PATTERN, Authenticator, Principal, bearer
from shared.config import Settings
from shared.errors import ConfigurationError, Forbidden, Unauthenticated

REMOVED_SIGNATURE = "SIGNATURE_REMOVED_BY_GOOGLE"
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")


def parse_identity_map(raw: str | None) -> dict[str, tuple[str, frozenset[str]]]:
    """Validate the identity map at start-up; messages never echo the map's content."""
    if not raw:
        raise ConfigurationError("PLANT_IDENTITY_MAP is not set")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ConfigurationError("PLANT_IDENTITY_MAP is not valid JSON") from exc
    if not isinstance(data, dict) or not data:
        raise ConfigurationError("PLANT_IDENTITY_MAP must be a non-empty JSON object")
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for email, entry in data.items():
        if not isinstance(entry, dict):
            raise ConfigurationError(f"PLANT_IDENTITY_MAP entry {email!r} must be an object")
        tenant, roles = entry.get("tenant"), entry.get("roles")
        if not isinstance(tenant, str) or not TENANT_PATTERN.match(tenant):
            raise ConfigurationError(f"PLANT_IDENTITY_MAP entry {email!r} has no valid tenant")
        if not isinstance(roles, list) or not roles or any(r not in ROLES for r in roles):
            raise ConfigurationError(f"PLANT_IDENTITY_MAP entry {email!r} has invalid roles")
        out[email.lower()] = (tenant, frozenset(roles))
    return out


class _Mapped:
    def __init__(self, identities: Mapping[str, tuple[str, frozenset[str]]]) -> None:
        self.identities = identities

    def principal(self, claims: Mapping[str, Any]) -> Principal:
        email = claims.get("email")
        if not isinstance(email, str) or claims.get("email_verified") is not True:
            raise Unauthenticated("the token carries no verified email")
        found = self.identities.get(email.lower())
        if found is None:
            raise Forbidden("this identity has no access to the registry")
        return Principal(subject=email.lower(), tenant=found[0], roles=found[1])


class PlatformIdentity(_Mapped):
    """Trust the claims Cloud Run forwards after verifying the token itself."""

    def __init__(self, cfg: Settings) -> None:
        if not (cfg.is_cloud and cfg.trust_platform_identity):
            raise ConfigurationError(
                "trusting the platform's identity needs PLANT_ENV=cloud and "
                "PLANT_TRUST_PLATFORM_IDENTITY=1 (and the function deployed behind IAM)"
            )
        super().__init__(parse_identity_map(cfg.identity_map))
        self.audience = cfg.token_audience

    def authenticate(self, headers: Any) -> Principal:
        token = bearer(headers)
        parts = token.split(".")
        if len(parts) != 3 or parts[2] != REMOVED_SIGNATURE:
            # Anything else did not come through Cloud Run's IAM check.
            raise Unauthenticated("expected an identity token forwarded by Cloud Run")
        try:
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except (ValueError, binascii.Error) as exc:
            raise Unauthenticated("the forwarded token is malformed") from exc
        if not isinstance(claims, dict):
            raise Unauthenticated("the forwarded token is malformed")
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise Unauthenticated("the forwarded token was not issued by Google")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp < time.time() - 30:
            raise Unauthenticated("the forwarded token has expired")
        return self.principal(claims)


class GoogleTokenVerifier(_Mapped):
    """Verify Google ID tokens in the function (deployments without IAM in front)."""

    def __init__(
        self,
        cfg: Settings,
        request: Callable[..., Any] | None = None,
        certs_url: str | None = None,
    ) -> None:
        super().__init__(parse_identity_map(cfg.identity_map))
        if not cfg.token_audience:
            raise ConfigurationError("PLANT_TOKEN_AUDIENCE is not set")
        self.audience = cfg.token_audience
        self._request = request
        self._certs_url = certs_url

    def authenticate(self, headers: Any) -> Principal:
        from google.auth import exceptions
        from google.oauth2 import id_token

        token = bearer(headers)
        request = self._request
        if request is None:
            from google.auth.transport import requests as transport

            request = self._request = transport.Request()
        try:
            kwargs = {"certs_url": self._certs_url} if self._certs_url else {}
            claims = id_token.verify_token(token, request, audience=self.audience, **kwargs)
        except (ValueError, exceptions.GoogleAuthError) as exc:
            raise Unauthenticated("the identity token does not verify") from exc
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise Unauthenticated("the identity token was not issued by Google")
        return self.principal(claims)


def cloud_authenticator(cfg: Settings) -> Authenticator:
    if cfg.trust_platform_identity:
        return PlatformIdentity(cfg)
    return GoogleTokenVerifier(cfg)
