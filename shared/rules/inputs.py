"""Shape and limit checks on what a client sends, before any rule needs the database."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from shared.integrity import canonical
from shared.rules.catalogue import Violation
from shared.rules.kinds import (
    KINDS,
    MAX_ATTRIBUTES,
    MAX_ATTRIBUTES_BYTES,
    MAX_DEPTH,
    MAX_ID_LIST,
    MAX_REASON,
    MAX_TAG,
    MAX_TAGS,
    Field,
    Kind,
    parse_uuid,
)

# Fields a client may add to a write besides the kind's own.
AMENDMENT_REASON = "amendment_reason"


def _depth(value: Any, level: int = 1) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level


# A member name that can stand in a path as ``.name``; any other is written ``["..."]``.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]+")


def _member_path(path: str, name: str) -> str:
    if _PLAIN_NAME.fullmatch(name):
        return f"{path}.{name}" if path else name
    return f"{path}[{json.dumps(name)}]"  # ASCII, escaped: a path is itself storable text


def unstorable_text(value: Any, path: str = "") -> Iterator[str]:
    """The path of every string and member name in ``value`` (JSON as parsed) that
    PostgreSQL's ``jsonb`` cannot hold: one with a NUL (U+0000) in it, which the registry
    therefore refuses at input wherever it stores text (``a.b[0]``, ``a["x y"]``).

    ``canonical.loads`` already refuses every other JSON value ``jsonb`` refuses (lone
    surrogates, NaN and infinities, integers past 2**53); a NUL is valid JSON and I-JSON,
    so it is the one checked here (tests/web/test_stored_text.py tries the rest
    against the server).
    """
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                yield where
        elif isinstance(item, dict):
            children = []
            for name, child in item.items():
                inner = _member_path(where, name)
                if "\x00" in name:
                    yield inner
                children.append((child, inner))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([(child, f"{where}[{i}]") for i, child in enumerate(item)]))


def _enum_rule(field: Field) -> str:
    return {"category": "L1-SKILL-01", "seniority_level": "L1-JOBROLE-04"}.get(
        field.name, "INPUT-02"
    )


def check_text(name: str, value: Any, max_length: int, required: bool) -> list[Violation]:
    if value is None:
        return [Violation("INPUT-01", name, "is required")] if required else []
    if not isinstance(value, str):
        return [Violation("INPUT-02", name, "must be a string")]
    if "\x00" in value:
        return [Violation("INPUT-02", name, "must not contain NUL characters")]
    if required and not value.strip():
        return [Violation("INPUT-01", name, "must not be empty")]
    if len(value) > max_length:
        return [Violation("INPUT-03", name, f"must be at most {max_length} characters")]
    return []


def _check_field(field: Field, value: Any) -> tuple[Any, list[Violation]]:
    """Validate one present field; return the normalised value and any violations."""
    name = field.name
    if field.type == "text":
        return value, check_text(name, value, field.max_length, field.required)
    if value is None:
        if field.required:
            return None, [Violation("INPUT-01", name, "is required")]
        return None, []
    if field.type == "enum":
        if not isinstance(value, str) or value not in field.choices:
            return value, [
                Violation(_enum_rule(field), name, f"must be one of {list(field.choices)}")
            ]
        return value, []
    if field.type == "id":
        parsed = parse_uuid(value)
        if parsed is None:
            return value, [Violation("INPUT-05", name, "must be a UUID")]
        return parsed, []
    if field.type == "ids":
        if not isinstance(value, list):
            return value, [Violation("INPUT-02", name, "must be a list of UUIDs")]
        if len(value) > MAX_ID_LIST:
            return value, [Violation("INPUT-03", name, f"must have at most {MAX_ID_LIST} items")]
        out, problems = [], []
        for i, item in enumerate(value):
            parsed = parse_uuid(item)
            if parsed is None:
                problems.append(Violation("INPUT-05", f"{name}[{i}]", "must be a UUID"))
            out.append(parsed)
        return out, problems
    if field.type == "tags":
        if not isinstance(value, list):
            return value, [Violation("INPUT-02", name, "must be a list of strings")]
        if len(value) > MAX_TAGS:
            return value, [Violation("INPUT-03", name, f"must have at most {MAX_TAGS} items")]
        problems = []
        for i, tag in enumerate(value):
            problems += check_text(f"{name}[{i}]", tag, MAX_TAG, True)
        return value, problems
    if field.type == "attributes":
        if not isinstance(value, dict):
            return value, [Violation("INPUT-02", name, "must be an object")]
        if len(value) > MAX_ATTRIBUTES:
            return value, [Violation("INPUT-03", name, f"must have at most {MAX_ATTRIBUTES} keys")]
        if _depth(value) > MAX_DEPTH:
            return value, [Violation("INPUT-03", name, f"must nest at most {MAX_DEPTH} levels")]
        if len(canonical.dumps(value)) > MAX_ATTRIBUTES_BYTES:
            return value, [
                Violation("INPUT-03", name, f"must be at most {MAX_ATTRIBUTES_BYTES} bytes")
            ]
        return value, [
            Violation("INPUT-02", where, "must not contain NUL characters")
            for where in unstorable_text(value, name)
        ]
    raise AssertionError(f"unknown field type {field.type}")


def check_write(
    kind: Kind, body: Any, *, current: dict[str, Any] | None
) -> tuple[dict[str, Any], str | None, list[Violation]]:
    """Validate a create (``current`` is None) or an amendment merged onto ``current``.

    Returns the complete client fields of the new version, the amendment reason and every
    violation found (all of them, not just the first).
    """
    if not isinstance(body, dict):
        return {}, None, [Violation("INPUT-02", "", "the body must be a JSON object")]
    problems: list[Violation] = []
    allowed = _NAMES[kind.type]
    for name in body:
        if name not in allowed and (current is None or name != AMENDMENT_REASON):
            problems.append(Violation("INPUT-04", name, "is not a field of this kind"))
    reason = body.get(AMENDMENT_REASON)
    if current is not None:
        problems += check_text(AMENDMENT_REASON, reason, MAX_REASON, True)
    fields: dict[str, Any] = {}
    previous = current or {}
    for field in kind.fields:
        name = field.name
        if field.derived:  # served, never written (shared.registry.membership)
            if name in body:
                problems.append(Violation("INPUT-04", name, DERIVED[name]))
            fields[name] = _EMPTY[field.type]()
            continue
        value, found = _check_field(field, body[name] if name in body else previous.get(name))
        problems += found
        if value is None and field.type in _EMPTY:
            value = _EMPTY[field.type]()
        fields[name] = value
    return fields, reason if isinstance(reason, str) else None, problems


# Why a derived field cannot be written, and what to do instead.
DERIVED = {
    "agents": "is derived from the agents' team_id and cannot be written; assign an agent "
    "with POST /registry/agents/{id}/team",
}
_EMPTY = {"ids": list, "tags": list, "attributes": dict}  # absent means empty, not null
_NAMES = {kind.type: frozenset(f.name for f in kind.fields) for kind in KINDS.values()}
