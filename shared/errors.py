"""Errors that map one-to-one onto RFC 9457 problem types.

Each class carries its HTTP status and a stable problem ``type``; the http helper renders them.
Messages are written for the client and never contain secrets, SQL or stack traces.
"""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://plant-registry.dev/problems/"
# Bounds on what a problem body repeats of the request, so a pathological request (a batch of
# a million unknown keys, a key a megabyte long) gets a small answer: each list shows its first
# MAX_LISTED entries and says how many it leaves out (``<list>_omitted``), each string its
# first MAX_TEXT characters.
MAX_LISTED = 100
MAX_TEXT = 300


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
            "detail": _clip(self.detail),
        }
        for name, value in self.extensions.items():
            if isinstance(value, list) and len(value) > MAX_LISTED:
                body[f"{name}_omitted"] = len(value) - MAX_LISTED
                value = value[:MAX_LISTED]
            body[name] = _clip(value)
        return body


def _clip(value: Any) -> Any:
    """``value`` with every string in it cut to MAX_TEXT characters."""
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 1] + "\u2026"
    if isinstance(value, dict):
        return {_clip(k): _clip(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clip(v) for v in value]
    return value


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


class InvalidQuery(PlantError):
    """422: a query parameter the route does not take, or a value it does not take;
    ``errors`` names each one (``{"field", "message"}``)."""

    status, slug, title = 422, "invalid-query", "Invalid query parameter"

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("invalid query parameters", errors=errors)


class InvalidPathParameter(PlantError):
    """422: a path parameter whose value cannot name anything (an id that is not a UUID, a
    version that is not a number), kept apart from a 404 for one that names nothing;
    ``errors`` names it (``{"field", "message"}``), as InvalidQuery names a query's."""

    status, slug, title = 422, "invalid-path-parameter", "Invalid path parameter"

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name} {message}", errors=[{"field": name, "message": message}])


class PreconditionRequired(PlantError):
    status, slug, title = 428, "precondition-required", "Precondition required"


class RequestHeadersTooLarge(PlantError):
    """431: the request line and headers together are over the server's limit."""

    status, slug, title = 431, "request-headers-too-large", "Request headers too large"


class NotImplementedHere(PlantError):
    """501: the feature needs something this deployment's database lacks (a PostgreSQL
    extension); ``missing`` names it, so an operator knows what to install."""

    status, slug, title = 501, "not-implemented", "Not implemented on this deployment"

    def __init__(self, detail: str, *, missing: str) -> None:
        super().__init__(detail, missing=missing)


class ServiceUnavailable(PlantError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


class ConfigurationError(Exception):
    """The process is configured wrongly; raised at start-up, never shown to clients."""
