"""Errors that map one-to-one onto RFC 9457 problem types.

Each class carries its HTTP status and a stable problem ``type``; the http helper renders them.
Messages are written for the client and never contain secrets, SQL or stack traces.
"""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://plant-registry.dev/problems/"


class PlantError(Exception):
    """Base class: an error the caller can act on."""

    status: int = 500
    slug: str = "internal"
    title: str = "Internal error"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug

    def problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        body.update(self.extensions)
        return body


class MalformedRequest(PlantError):
    status, slug, title = 400, "malformed-request", "Malformed request"


class Unauthenticated(PlantError):
    status, slug, title = 401, "unauthenticated", "Authentication required"


class Forbidden(PlantError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(PlantError):
    status, slug, title = 404, "not-found", "Not found"


class MethodNotAllowed(PlantError):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"


class Conflict(PlantError):
    status, slug, title = 409, "conflict", "Conflict"


class IntegrityViolation(PlantError):
    """409: the stored log contradicts its own checkpoints or the anchor store."""

    status, slug, title = 409, "integrity-violation", "Integrity violation"


class PreconditionFailed(PlantError):
    status, slug, title = 412, "precondition-failed", "Precondition failed"


class PayloadTooLarge(PlantError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(PlantError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class ValidationFailed(PlantError):
    """422: the request is well-formed JSON but breaks input limits or rules.

    ``violations`` lists every problem found, each ``{"rule", "field", "message"}``.
    """

    status, slug, title = 422, "validation-failed", "Validation failed"

    def __init__(self, detail: str, violations: list[dict[str, Any]]) -> None:
        super().__init__(detail, violations=violations)
        self.violations = violations


class LimitExceeded(PlantError):
    """422: a value is well-formed but past one of the service's limits (a page size, a
    filter's length, the nesting of a body); names the field and the limit."""

    status, slug, title = 422, "limit-exceeded", "Limit exceeded"

    def __init__(self, detail: str, *, field: str, limit: int) -> None:
        super().__init__(detail, errors=[{"field": field, "message": detail}], limit=limit)


class PreconditionRequired(PlantError):
    status, slug, title = 428, "precondition-required", "Precondition required"


class RequestHeadersTooLarge(PlantError):
    """431: the request line and headers together are over the server's limit."""

    status, slug, title = 431, "request-headers-too-large", "Request headers too large"


class ServiceUnavailable(PlantError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


class ConfigurationError(Exception):
    """The process is configured wrongly; raised at start-up, never shown to clients."""
