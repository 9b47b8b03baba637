"""The entries pass's plain versions taken in by the extension (``native/version_rows.c``,
``native_rows.version_rows``) against its twin, the pass's own row loop
(``entry_rows.Reading``): on batches of generated version documents, chained, repeated,
skipped and corrupted (bytes flipped, whitespace, escapes, NULs, bad UTF-8, duplicate or
unordered members, numbers of other forms, other types, relationships set, wrong ids,
versions, kinds, tenants, links and columns), both leave the same state: the same summaries
(of the same type), findings in the same order, irregular entities, openings, kept rows, map
feed and missing entries. The extension must take the plain rows itself, so that the test
holds its code, not Python against Python."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.audit import map_feed, versions
from shared.audit.entry_rows import Kept, Reading
from shared.audit.state import AuditState, Summary, summary
from shared.integrity import canonical, map_memory, native_rows

NATIVE = map_memory.NATIVE
pytestmark = pytest.mark.skipif(NATIVE is None, reason="native/ is not built: `make` builds it")

TENANT = "tenant-a"
_V2 = hashlib.sha256(b"v2").digest()
IDS = [str(uuid.UUID(int=i * 0x1234567 + 1)) for i in range(4)]

_TEXT = st.one_of(
    st.sampled_from(["Rust", "Go and C", "écrit", "日本", 'a"b', "back\\slash", "nul\x00", "\n"]),
    st.text(max_size=8),
)


def _document(entity: int, number: int, name: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A version document shaped as ``documents.build`` makes one, ``fields`` replacing its
    values (a section's member set to ``...`` is left out)."""
    doc: dict[str, Any] = {
        "audit_trail": {"actor": "pr-1", "request_id": "r", "rule_results": [{"ok": True}]},
        "constitutional_alignment": {"certification": None, "rule_results": []},
        "identity": {"entity_type": "skill", "id": IDS[entity], "name": name, "tenant": TENANT},
        "lifecycle": {"status": "draft", "effective_to": None, "created_at": "2026-01-01"},
        "metadata": {"category": "technical", "description": name, "tags": [1, -2, "x"]},
        "relationships": {"governance_agent_id": None},
        "versioning": {"version": number, "previous_digest": None},
    }
    for path, value in fields.items():
        section, _, member = path.partition(".")
        if not member:
            doc.pop(section) if value is ... else doc.__setitem__(section, value)
        elif not isinstance(doc.get(section), dict):
            continue
        elif value is ...:
            doc[section].pop(member, None)
        else:
            doc[section][member] = value
    return doc


_FIELDS = st.dictionaries(
    st.sampled_from([
        "identity.tenant", "identity.id", "identity.entity_type", "identity.name",
        "lifecycle.status", "metadata.category", "relationships.governance_agent_id",
        "relationships.skill_id", "versioning.version", "metadata", "relationships",
    ]),
    st.one_of(st.sampled_from([None, ..., 3, "other", TENANT, IDS[1], "certified", 1.5,
                               [], {}, True, 2**40, -1]), _TEXT),
    max_size=2,
)  # fmt: skip


def _corrupt(body: bytes, how: str, at: int, byte: int) -> bytes:
    """The body with one of the changes an insider or a bug could make."""
    at %= len(body)
    changes = {
        "none": body,
        "flip": body[:at] + bytes([byte]) + body[at + 1 :],
        "space": body[:at] + b" " + body[at:],
        "cut": body[:at],
        "tail": body + b" ",
        "float": body.replace(b'"version":', b'"version":1.0,"v":', 1),
        "exponent": body.replace(b'"version":1', b'"version":1e0', 1),
        "zero": body.replace(b'"version":', b'"version":0', 1),
        "twice": body.replace(b'{"entity_type"', b'{"entity_type":"skill","entity_type"', 1),
        "order": body.replace(b'"identity"', b'"zidentity"', 1),
        "escape": body.replace(b'"draft"', b'"dr\\u0061ft"', 1),
        "nul": body.replace(b'"pr-1"', b'"pr\\u0000"', 1),
        "surrogate": body.replace(b'"pr-1"', b'"pr\\u0000\xed\xa0\x80"', 1),
        "backslash": body.replace(b'"pr-1"', b'"pr\\\\u0000"', 1),
        "utf8": body.replace(b'"pr-1"', b'"pr\xed\xa0\x80"', 1),
        "deep": body.replace(b'"tags":', b'"tags":' + b"[" * 40 + b"]" * 40 + b',"z":', 1),
    }
    return changes[how]


_ROW = st.tuples(
    st.integers(0, 3),  # the entity
    st.sampled_from([1, 1, 1, 0, 2, -1]),  # its version: the next, or another
    _FIELDS,
    st.sampled_from(["none"] * 8 + ["flip", "space", "cut", "tail", "float", "exponent", "zero",
                                    "twice", "order", "escape", "nul", "backslash", "utf8",
                                    "deep", "surrogate"]),
    st.integers(0, 10_000),
    st.integers(0, 255),
    st.sampled_from(["ok"] * 10 + ["link", "unlinked", "digest", "leaf", "stored", "certificate",
                                   "map_commit", "skip", "repeat", "kind", "reported"]),
    _TEXT,
)  # fmt: skip


def _rows(
    specs: list[tuple[Any, ...]], low: int, known: bool = False
) -> tuple[list[tuple[Any, ...]], bytes, set[int]]:
    """The batch the specs describe, the stored level-0 hashes joined, and indices reported
    (``known``: the first entity's version 2 was read before)."""
    rows, stored, reported = [], b"", set()
    numbers, digests = [0] * 4, [None] * 4
    if known:
        numbers[0], digests[0] = 2, _V2
    idx = low
    for entity, step, fields, how, at, byte, twist, name in specs:
        number = numbers[entity] + step
        doc = _document(entity, number, name, fields)
        body = _corrupt(canonical.dumps_general(doc), how, at, byte) or b"{}"
        digest = hashlib.sha256(body).digest()
        leaf = hashlib.sha256(b"\x00" + body).digest()
        prev = digests[entity]
        entry_type, kind = "version", "skill"
        if twist == "link":
            prev = hashlib.sha256(b"another").digest()
        elif twist == "unlinked":
            prev = None
        elif twist in ("certificate", "map_commit"):
            entry_type = twist
        elif twist == "kind":
            kind = "job_role"
        elif twist == "skip":
            idx += 1
        elif twist == "repeat" and rows:
            idx -= 1
        elif twist == "reported":
            reported.add(idx)
        rows.append((
            idx, number, hashlib.sha256(b"x").digest() if twist == "digest" else digest,
            bytes(32) if twist == "leaf" else leaf, IDS[entity].encode(), entry_type, kind,
            prev, body,
        ))  # fmt: skip
        stored += bytes(32) if twist == "stored" else leaf
        numbers[entity], digests[entity] = number, digest
        idx += 1
    return rows, stored, reported


def _read(rows: list[tuple[Any, ...]], stored: bytes, reported: set[int], low: int,
           known: bool, opening: bool, split: int) -> tuple[Any, ...]:  # fmt: skip
    """The state a range leaves after these rows, read as the pass reads it."""
    state = AuditState(None, TENANT, reported=set(reported), opening={} if opening else None)  # type: ignore[arg-type]
    if known:  # read before the range: an entity's version 2, and an irregular one
        state.latest[IDS[0]] = summary((low - 1, 2, _V2, "draft", "skill", None, "n", None, 0))
        state.irregular.add(IDS[3])
    state.map_feed = map_feed.Feed()
    leaves: list[bytes] = []
    kept = Kept()
    reading = Reading(state, low, stored or None, {}, leaves, kept)
    reading.batch(rows[:split])
    reading.batch(rows[split:])
    intact = reading.complete(max((r[0] for r in rows), default=low - 1) + 1)
    latest = [(k, type(v), tuple(v)) for k, v in state.latest.items()]
    feed = [(list(v.items()), list(c.items()), o, m) for v, c, o, m in state.map_feed.plain()]
    return (
        latest, state.findings, state.irregular, state.opening, state.reported, kept, feed,
        leaves, intact, state.rows_read, reading.present,
    )  # fmt: skip


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ROW, max_size=12), st.booleans(), st.booleans(), st.integers(0, 12))
def test_the_compiled_versions_leave_what_the_python_loop_leaves(specs, known, opening, split):
    rows, stored, reported = _rows(specs, 5, known)
    compiled = _read(rows, stored, reported, 5, known, opening, split)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(map_memory, "NATIVE", None)
        pure = _read(rows, stored, reported, 5, known, opening, split)
    assert compiled == pure


def test_plain_versions_are_taken_by_the_extension_and_others_left_to_python():
    specs = [(e, 1, {}, "none", 0, 0, "ok", f"skill {e}") for e in (0, 1, 0, 2, 0)]
    rows, stored, _ = _rows(specs, 0)
    _, flags = native_rows.entry_hashes(rows, 0, stored)
    state = AuditState(None, TENANT)  # type: ignore[arg-type]
    feed: dict[str, Any] = {}
    args = (state, versions.NAMES, map_feed.KINDS, Summary, feed)
    assert native_rows.version_rows(rows, flags, 0, 0, *args) == (5, 5)
    assert [type(s) for s in state.latest.values()] == [Summary] * 3
    assert state.latest[IDS[0]][:2] == (4, 3) and state.latest[IDS[0]].first == 0
    assert feed[IDS[0]] == (4, "skill", 3, rows[4][3], "draft")
    # a version with a relationship set, a \u escape, or a broken link: Python's, untouched
    for fields, how, twist in [({"relationships.skill_id": IDS[1]}, "none", "ok"),
                               ({}, "escape", "ok"), ({}, "none", "link")]:  # fmt: skip
        rows, stored, _ = _rows([(0, 1, {}, "none", 0, 0, "ok", "a"),
                                 (0, 1, fields, how, 0, 0, twist, "a")], 0)  # fmt: skip
        _, flags = native_rows.entry_hashes(rows, 0, stored)
        state = AuditState(None, TENANT)  # type: ignore[arg-type]
        assert native_rows.version_rows(rows, flags, 0, 0, state, *args[1:]) == (1, 1)
        assert list(state.latest) == [IDS[0]] and state.latest[IDS[0]].version == 1


@pytest.mark.parametrize("how", ["utf8", "surrogate"])
def test_bytes_not_utf8_in_a_member_the_pass_skips_are_named(how):
    """msgspec reads the checked fields and skips the rest without checking their text, so
    a surrogate's bytes in ``audit_trail`` passed, and beside a NUL (which the pass reads
    whole, with orjson, to name) stopped the audit with orjson's error. Such bytes are no
    version the registry writes: the pass names the body, compiled and pure alike."""
    rows, stored, reported = _rows([(0, 1, {}, how, 0, 0, "ok", "skill 0")], 5, False)
    for native in (map_memory.NATIVE, None):
        with pytest.MonkeyPatch.context() as monkeypatch:
            monkeypatch.setattr(map_memory, "NATIVE", native)
            latest, findings = _read(rows, stored, reported, 5, False, False, 1)[:2]
        assert latest == []
        assert [(f.kind, f.section, f.field, f.log_index) for f in findings] == [
            ("altered", "row", "body", 5)
        ]
