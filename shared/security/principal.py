"""Who is calling: principals, roles, and what every authenticator answers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from shared.errors import Forbidden, Unauthenticated

ROLES = ("reader", "author", "certifier", "auditor", "admin")
# Every role but admin may read the registry and the log.
READ_ROLES = ("reader", "author", "certifier", "auditor")
TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: who, for which tenant, with which roles."""

    subject: str
    tenant: str
    roles: frozenset[str]

    def has(self, *roles: str) -> bool:
        return "admin" in self.roles or any(role in self.roles for role in roles)

    def require(self, *roles: str) -> None:
        """Raise 403 unless the caller holds one of ``roles`` (admin holds them all)."""
        if not self.has(*roles):
            raise Forbidden(f"this operation needs the role {' or '.join(roles)}")


def _storable(subject: str) -> bool:
    """The subject is written into every version and certificate it makes: it must hold no
    NUL (PostgreSQL's jsonb refuses it) and no lone surrogate (it has no UTF-8 form)."""
    try:
        subject.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in subject


def principal_from_claims(subject: Any, tenant: Any, roles: Any) -> Principal:
    """Validate the identity fields every scheme must supply."""
    if not isinstance(subject, str) or not subject or len(subject) > 320 or not _storable(subject):
        raise Unauthenticated("token has no valid subject")
    if not isinstance(tenant, str) or not TENANT_PATTERN.match(tenant):
        raise Unauthenticated("token has no valid tenant")
    if not isinstance(roles, list) or not roles or not all(r in ROLES for r in roles):
        raise Unauthenticated("token has no valid roles")
    return Principal(subject=subject, tenant=tenant, roles=frozenset(roles))


class Authenticator(Protocol):
    def authenticate(self, headers: Any) -> Principal: ...


def bearer(headers: Any) -> str:
    """The bearer token of an Authorization header, or 401."""
    value = headers.get("Authorization")
    if not value:
        raise Unauthenticated("missing Authorization: Bearer token")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization must be 'Bearer <token>'")
    return token.strip()
