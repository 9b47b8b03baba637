"""Google identities in the cloud: who called, mapped to a tenant and roles by configuration.

Two modes, chosen by configuration and never used locally:

- ``PlatformIdentity``: the function is private (IAM invoker only). Cloud Run has verified the
  caller's Google ID token and forwards it with its signature replaced by
  ``SIGNATURE_REMOVED_BY_GOOGLE``; the claims are trusted because the platform checked them.
  Refuses to exist unless ``PLANT_ENV=cloud`` and ``PLANT_TRUST_PLATFORM_IDENTITY`` are set.
- ``GoogleTokenVerifier``: the function is reachable without IAM, so it verifies the ID
  token itself with google-auth (signature against Google's certificates, issuer, audience,
  expiry).

The identity map (``PLANT_IDENTITY_MAP``) is JSON: ``{"email": {"tenant": "...", "roles":
["auditor", ...]}}``; an email not in it is refused with 403. Start-up errors about the map
name the offending email, never echo the document.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from google.auth.transport import Request

from shared.config import Settings
from shared.errors import ConfigurationError, Forbidden, ServiceUnavailable, Unauthenticated
from shared.security.principal import ROLES, TENANT_PATTERN, Authenticator, Principal, bearer

REMOVED_SIGNATURE = "SIGNATURE_REMOVED_BY_GOOGLE"
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
CLOCK_SKEW_SECONDS = 10


def parse_identity_map(raw: str | None) -> dict[str, tuple[str, frozenset[str]]]:
    """Validate the identity map at start-up.

    Raises:
        ConfigurationError: the map is missing, not JSON, or an entry lacks a valid tenant
            or roles.
    """
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
        if "@" not in email:
            raise ConfigurationError(f"PLANT_IDENTITY_MAP key {email!r} is not an email")
        if not isinstance(entry, dict):
            raise ConfigurationError(f"PLANT_IDENTITY_MAP entry {email!r} must be an object")
        tenant, roles = entry.get("tenant"), entry.get("roles")
        if not isinstance(tenant, str) or not TENANT_PATTERN.match(tenant):
            raise ConfigurationError(f"PLANT_IDENTITY_MAP entry {email!r} has no valid tenant")
        if not isinstance(roles, list) or not roles or any(r not in ROLES for r in roles):
            raise ConfigurationError(f"PLANT_IDENTITY_MAP entry {email!r} has invalid roles")
        out[email.lower()] = (tenant, frozenset(roles))
    return out


def _segment(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class _Mapped:
    """Claims with a verified email -> the configured Principal (403 for unknown emails)."""

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
    """Trust the claims Cloud Run forwards after verifying the token itself.

    Raises:
        ConfigurationError: (at construction) unless ``PLANT_ENV=cloud`` and
            ``PLANT_TRUST_PLATFORM_IDENTITY=1``, or when the identity map is malformed.
    """

    def __init__(self, cfg: Settings) -> None:
        if not (cfg.is_cloud and cfg.trust_platform_identity):
            raise ConfigurationError(
                "trusting the platform's identity needs PLANT_ENV=cloud and "
                "PLANT_TRUST_PLATFORM_IDENTITY=1 (and the function deployed behind IAM)"
            )
        super().__init__(parse_identity_map(cfg.identity_map))

    def authenticate(self, headers: Any) -> Principal:
        token = bearer(headers)
        parts = token.split(".")
        if len(parts) != 3 or parts[2] != REMOVED_SIGNATURE:
            # Anything else did not come through Cloud Run's IAM check.
            raise Unauthenticated("expected an identity token forwarded by Cloud Run")
        try:
            claims = _segment(parts[1])
        except (ValueError, binascii.Error) as exc:
            raise Unauthenticated("the forwarded token is malformed") from exc
        if not isinstance(claims, dict):
            raise Unauthenticated("the forwarded token is malformed")
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise Unauthenticated("the forwarded token was not issued by Google")
        exp = claims.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise Unauthenticated("the forwarded token has no expiry")
        if exp < time.time() - CLOCK_SKEW_SECONDS:
            raise Unauthenticated("the forwarded token has expired")
        return self.principal(claims)


class CachedCerts(Request):
    """A google-auth request callable that keeps Google's certificate document for a while,
    so verifying a token does not cost an HTTPS round trip per request.

    The document is kept for its ``Cache-Control: max-age`` (clamped to 60 s .. 6 h; 1 h if
    absent) and fetched again early, at most once a minute, when a token names a key id the
    kept document lacks (Google rotated its keys).
    """

    MIN_REFETCH_SECONDS = 60

    def __init__(self, request: Callable[..., Any]) -> None:
        self._request = request
        self._lock = threading.Lock()
        self._kept: dict[str, tuple[float, float, Any]] = {}  # url -> (fetched, expires, resp)

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        given = {"body": body, "headers": headers, "timeout": timeout}
        kwargs.update((name, value) for name, value in given.items() if value is not None)
        if method != "GET":
            return self._request(url, method=method, **kwargs)
        now = time.monotonic()
        with self._lock:
            kept = self._kept.get(url)
            if kept and now < kept[1]:
                return kept[2]
        response = self._request(url, method=method, **kwargs)
        if response.status == 200:
            with self._lock:
                self._kept[url] = (now, now + _max_age(response.headers), response)
        return response

    def expect(self, url: str, kid: Any) -> None:
        """Drop the kept document for ``url`` if it lacks ``kid`` (Google rotated its keys),
        at most once a minute, so the next call fetches it again."""
        with self._lock:
            kept = self._kept.get(url)
            if kept is None or time.monotonic() - kept[0] < self.MIN_REFETCH_SECONDS:
                return
            try:
                document = json.loads(kept[2].data)
                keys = document.get("keys")
                known = {k.get("kid") for k in keys} if isinstance(keys, list) else set(document)
            except (ValueError, AttributeError, TypeError):
                known = set()
            if kid not in known:
                del self._kept[url]


def _max_age(headers: Mapping[str, str] | None) -> float:
    for item in ((headers or {}).get("cache-control") or "").split(","):
        name, _, value = item.strip().partition("=")
        if name.lower() == "max-age" and value.isdigit():
            return float(min(max(int(value), 60), 6 * 3600))
    return 3600.0


class GoogleTokenVerifier(_Mapped):
    """Verify Google ID tokens in the function (deployments without IAM in front).

    Args:
        cfg: ``token_audience`` is the audience tokens must carry (the function's URL or
            a custom audience); ``identity_map`` maps emails to tenants and roles.
        request: a google-auth request callable; default ``google.auth.transport.requests``.
        certs_url: where Google's ID-token certificates are; tests point it at a local fake.

    Raises:
        ConfigurationError: (at construction) no audience, or a malformed identity map.
    """

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
        self.certs_url = certs_url or GOOGLE_CERTS_URL
        self._given = request
        self._certs: CachedCerts | None = None

    def _request(self) -> CachedCerts:
        if self._certs is None:
            request = self._given
            if request is None:
                from google.auth.transport import requests as transport  # cloud path only

                request = transport.Request()
            self._certs = CachedCerts(request)
        return self._certs

    def authenticate(self, headers: Any) -> Principal:
        import jwt as pyjwt
        from google.auth import exceptions
        from google.oauth2 import id_token

        token = bearer(headers)
        certs = self._request()
        try:
            header = _segment(token.split(".", 1)[0])
            if isinstance(header, dict):
                certs.expect(self.certs_url, header.get("kid"))
            claims = id_token.verify_token(
                token,
                certs,
                audience=self.audience,
                certs_url=self.certs_url,
                clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
            )
        except exceptions.TransportError as exc:
            raise ServiceUnavailable("Google's token certificates could not be fetched") from exc
        except (ValueError, binascii.Error, exceptions.GoogleAuthError, pyjwt.PyJWTError) as exc:
            raise Unauthenticated("the identity token does not verify") from exc
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise Unauthenticated("the identity token was not issued by Google")
        return self.principal(claims)


def cloud_authenticator(cfg: Settings) -> Authenticator:
    """PlatformIdentity when the platform is trusted (behind IAM), else GoogleTokenVerifier."""
    if cfg.trust_platform_identity:
        return PlatformIdentity(cfg)
    return GoogleTokenVerifier(cfg)
