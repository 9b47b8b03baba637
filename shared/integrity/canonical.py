"""RFC 8785 JSON Canonicalization Scheme (JCS), and the strict parser for client input.

A version is stored as the exact bytes ``dumps`` returns and hashed from those bytes, so
verification never re-serialises. For values made only of strings, integers, booleans, null,
arrays and objects whose member names lie in Unicode's basic plane, orjson (in C) with sorted
keys writes exactly these bytes, so ``dumps`` uses it; anything else (a float, a name outside
the BMP, which UTF-16 sorts differently from code points, a type with no JSON form) takes
Trail of Bits' ``rfc8785`` library, its errors raised as ``CanonicalError``. ``loads``
refuses what JCS cannot represent faithfully (I-JSON, RFC 7493): duplicate keys,
NaN/Infinity, lone surrogates, and integers outside +-(2**53 - 1), which a JavaScript
verifier would silently round.
"""

from __future__ import annotations

import functools
import json
import math
from datetime import UTC, datetime
from typing import Any

import orjson
import rfc8785

MAX_SAFE_INTEGER = 2**53 - 1
MAX_DEPTH = 32  # input nesting limit: far above any document the registry accepts


class CanonicalError(ValueError):
    """The value cannot be canonicalised, or the input is not I-JSON."""


class DepthExceeded(CanonicalError):
    """The input nests deeper than ``MAX_DEPTH``: well-formed, but past the limit."""


class UnsafeInteger(CanonicalError):
    """An integer outside +-(2**53 - 1), however many digits it has; ``path`` names where
    (``items[0].version``; empty for the top level)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path or 'the value'}: integer outside the exact range +-(2**53-1)")
        self.path = path


# Sorted members, compact, and integers refused past 53 bits (as rfc8785 refuses them).
_ORJSON = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER


def dumps(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of ``value``."""
    return dumps_plain(value) if is_plain(value) else dumps_general(value)


def dumps_general(value: Any) -> bytes:
    """``dumps`` by the ``rfc8785`` library alone, for every value: its errors (and the
    UnicodeEncodeError it lets out for a lone surrogate in a member name) as ours."""
    try:
        return rfc8785.dumps(value)
    except UnicodeEncodeError as exc:
        raise CanonicalError("string contains a lone surrogate") from exc
    except rfc8785.CanonicalizationError as exc:
        raise CanonicalError(str(exc)) from exc


def is_plain(value: Any) -> bool:
    """True when orjson's sorted output is exactly RFC 8785 for ``value``: exact str, int,
    bool, None, list, tuple and dict only (no float: ECMAScript's number form differs), and
    every member name a str in the BMP (orjson sorts by code point, RFC 8785 by UTF-16 unit)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is dict:
        for name, item in value.items():
            if type(name) is not str or not (name.isascii() or max(name) <= "\uffff"):
                return False
            kind = type(item)
            if not (kind is str or kind is int or kind is bool or item is None or is_plain(item)):
                return False
        return True
    if kind is list or kind is tuple:
        for item in value:
            kind = type(item)
            if not (kind is str or kind is int or kind is bool or item is None or is_plain(item)):
                return False
        return True
    return False


def dumps_plain(value: Any) -> bytes:
    """``dumps`` of a value the caller knows ``is_plain`` (built from such values), without
    checking it again: the C encoder alone."""
    try:
        return orjson.dumps(value, option=_ORJSON)
    except orjson.JSONEncodeError:
        return dumps_general(value)  # a lone surrogate or an unsafe integer: named there


def loads(data: bytes | str) -> Any:
    """Parse I-JSON strictly: the input side of the canonical form."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CanonicalError(f"not UTF-8 at byte {exc.start}") from exc
    try:
        value = json.loads(
            data,
            object_pairs_hook=_unique_pairs,
            parse_constant=_reject_constant,
            parse_int=_safe_int,
        )
    except json.JSONDecodeError as exc:
        raise CanonicalError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise DepthExceeded(f"nested deeper than {MAX_DEPTH} levels") from exc
    _check_parsed(value)
    return value


class _Unsafe:
    """Stands for an integer ``_safe_int`` refused, until ``_check_parsed`` finds where."""


_UNSAFE = _Unsafe()


def read(data: bytes) -> Any:
    """Parse bytes that ``dumps`` wrote (stored versions): the fast path (orjson, in C),
    without the I-JSON re-checks ``loads`` applies to input from outside. Raises ValueError
    on bad JSON."""
    return orjson.loads(data)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise CanonicalError(f"duplicate key {key!r}")
            seen.add(key)
    return out


def _reject_constant(name: str) -> Any:
    raise CanonicalError(f"{name} is not valid JSON")


def _safe_int(text: str) -> int | _Unsafe:
    # 2**53 - 1 has 16 digits: a longer one is never int()ed (Python refuses 4,300 and more).
    if len(text.lstrip("-")) > 16 or abs(number := int(text)) > MAX_SAFE_INTEGER:
        return _UNSAFE
    return number


def _check_parsed(value: Any) -> None:
    """Nesting within ``MAX_DEPTH`` (a scalar inside counts as a level), finite numbers, and
    no lone surrogate in any string or member name (orjson refuses those, in C)."""
    stack = [(value, 1)]
    unsafe = value is _UNSAFE
    while stack:
        item, depth = stack.pop()
        if type(item) is dict:
            children: Any = item.values()
        elif type(item) is list:
            children = item
        else:
            continue
        if depth >= MAX_DEPTH and children:
            raise DepthExceeded(f"nested deeper than {MAX_DEPTH} levels")
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
            elif kind is float and not math.isfinite(child):
                raise CanonicalError("number out of range")
            elif child is _UNSAFE:
                unsafe = True
    if unsafe:
        raise UnsafeInteger(_path_of_unsafe(value) or "")
    if type(value) is float and not math.isfinite(value):
        raise CanonicalError("number out of range")
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise CanonicalError("string contains a lone surrogate") from exc


def _path_of_unsafe(value: Any, path: str = "") -> str | None:
    """Where the first refused integer sits in ``value`` (only walked when there is one)."""
    if value is _UNSAFE:
        return path
    items: Any = ()
    if type(value) is dict:
        items = ((f"{path}.{k}" if path else k, v) for k, v in value.items())
    elif type(value) is list:
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    for where, child in items:
        found = _path_of_unsafe(child, where)
        if found is not None:
            return found
    return None


@functools.lru_cache(maxsize=4096)  # member names repeat in every document
def member_name(name: str) -> bytes:
    """A member name's canonical bytes, quoted and escaped: RFC 8785 is compositional, so an
    object of already-serialised members is ``{`` name ``:`` value ``,`` ... ``}`` in name order."""
    return dumps_general(name)


@functools.lru_cache(maxsize=4096)
def _utf16_key(key: str) -> bytes:
    # RFC 8785 §3.2.3: members sorted by the UTF-16 code units of their names.
    return key.encode("utf-16-be", "surrogatepass")


def member_order(key: Any) -> bytes:
    """The sort key of a member name in RFC 8785 (its UTF-16 code units); refuses non-strings."""
    if not isinstance(key, str):
        raise CanonicalError("object keys must be strings")
    return _utf16_key(key)


def now_text() -> str:
    """UTC time as RFC 3339 with milliseconds, the form every document uses."""
    return time_text(datetime.now(UTC))


def time_text(moment: datetime) -> str:
    """``moment`` in UTC as RFC 3339 with milliseconds (``...T12:00:00.000Z``)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
