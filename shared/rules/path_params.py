"""Path parameters: a value that cannot name anything is a 422 naming the parameter, kept
apart from a well-formed one that names nothing here (404, "no such ...").

Parameters are named as the README's routes name them: ``id`` for an entity's or an audit
run's id, ``version``, ``index``.
"""

from __future__ import annotations

from shared.errors import InvalidPathParameter
from shared.rules.kinds import parse_uuid


def uuid(raw: str, name: str = "id") -> str:
    """``raw`` as a canonical lower-case UUID; 422 naming ``name`` if it is not one."""
    parsed = parse_uuid(raw)
    if parsed is None:
        raise InvalidPathParameter(name, "must be a UUID")
    return parsed


def number(raw: str, name: str, *, minimum: int, maximum: int) -> int | None:
    """``raw`` as an integer of at least ``minimum`` (ASCII digits only; 422 naming ``name``
    otherwise), or None past ``maximum`` (the largest its column holds): certainly nothing
    such, the caller's 404 without a query."""
    if not (raw.isascii() and raw.isdigit()):
        raise InvalidPathParameter(name, f"must be an integer of at least {minimum}")
    digits = raw.lstrip("0") or "0"
    if len(digits) > len(str(maximum)) or int(digits) > maximum:
        return None
    if int(digits) < minimum:
        raise InvalidPathParameter(name, f"must be an integer of at least {minimum}")
    return int(digits)
