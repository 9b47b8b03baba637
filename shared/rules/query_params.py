"""Query parameters: the one integer parser every route uses, and the one cursor format.

A bad query parameter is always a 422 naming it: ``InvalidQuery`` when its value is not one
the route takes, ``LimitExceeded`` (with the limit) when it is past one of the service's limits.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable

from shared.errors import InvalidQuery, LimitExceeded

MAX_INTEGER = 2**63 - 1  # PostgreSQL's bigint: every integer parameter ends up in one


def integer(
    query: dict[str, str],
    name: str,
    *,
    minimum: int = 0,
    maximum: int = MAX_INTEGER,
    default: int | None = None,
    required: bool = False,
) -> int | None:
    """``query[name]`` as an int from ``minimum`` to ``maximum``; ``default`` when absent.

    ASCII digits only (``str.isdigit`` also takes superscripts and other scripts' digits), and
    never ``int()`` of more digits than ``maximum`` has (Python refuses 4,300 and more)."""
    raw = query.get(name)
    if raw is None or raw == "":
        if required:
            raise InvalidQuery([{"field": name, "message": "is required"}])
        return default
    if not (raw.isascii() and raw.isdigit()):
        raise _not_in_range(name, minimum, maximum)
    digits = raw.lstrip("0") or "0"
    if len(digits) > len(str(maximum)) or int(digits) > maximum:
        raise LimitExceeded(f"{name} must be at most {maximum}", field=name, limit=maximum)
    value = int(digits)
    if value < minimum:
        raise _not_in_range(name, minimum, maximum)
    return value


def _not_in_range(name: str, minimum: int, maximum: int) -> InvalidQuery:
    return InvalidQuery(
        [{"field": name, "message": f"must be an integer from {minimum} to {maximum}"}]
    )


def unknown(names: Iterable[str], known: tuple[str, ...]) -> list[dict[str, str]]:
    """An ``errors`` entry for each parameter the route does not take (the Router's check of
    every route's declared ``query``)."""
    return [
        {"field": name, "message": "unknown query parameter"} for name in names if name not in known
    ]


def cursor_for(position: int) -> str:
    """An opaque page cursor for ``position`` (a log index)."""
    return base64.urlsafe_b64encode(f"i{position}".encode()).decode().rstrip("=")


def cursor(query: dict[str, str], name: str = "cursor") -> int | None:
    """The position a ``cursor_for`` cursor holds; 422 for anything else, whatever its value."""
    raw = query.get(name)
    if not raw:
        return None
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        text = ""
    digits = text[1:]
    if (
        not text.startswith("i")
        or not (digits.isascii() and digits.isdigit())
        or len(digits) > len(str(MAX_INTEGER))
        or int(digits) > MAX_INTEGER
    ):
        raise InvalidQuery([{"field": name, "message": "not a cursor we issued"}])
    return int(digits)
