"""The heads the heads pass leaves out unchecked (``plain_heads``): the compiled filter
(native/head_checks.c) leaves out only heads its pure-Python twin does, the same ones on
the plain shapes (a skill named in ASCII, plain types), and a head the twin leaves out is one
whose check (``one_head._head``) finds nothing and hands nothing on. Heads drawn around their
summaries: each column kept or changed (to another value, another type, None), summaries
with and without relationships or a version 1 read, entities wanted by a rule or read in
another range."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.audit import name_keys, plain_heads, rules, versions
from shared.audit.heads import one_head
from shared.audit.state import AuditState, Summary, packed, summary, unpacked
from shared.integrity import map_memory

NATIVE = map_memory.NATIVE
pytestmark = pytest.mark.skipif(NATIVE is None, reason="native/ is not built: `make` builds it")

_IDS = [str(uuid.UUID(int=n)) for n in range(1, 5)]
_NAMES = st.one_of(
    st.sampled_from(["Rust", "  rust ", "Part II", "m" * 600, "", "Café", "naïve"]),
    st.text(st.characters(max_codepoint=127), max_size=12),
    st.text(max_size=6),
)


@st.composite
def _summary(draw: st.DrawFn) -> Summary:
    kind = draw(st.sampled_from(["skill", "skill", "skill", "agent", "team"]))
    relations = draw(st.sampled_from([None, None, None, {"governance_agent_id": _IDS[0]}]))
    return summary(
        (
            draw(st.sampled_from([7, 8])),  # log_index
            draw(st.sampled_from([1, 2])),  # version
            b"d" * 32,
            draw(st.sampled_from(["draft", "certified"])),
            kind,
            relations,
            draw(_NAMES),
            draw(st.sampled_from([None, "domain_expertise"])),
            draw(st.sampled_from([0, 3, 3, 3, None])),  # first
        )
    )


def _changed(draw: st.DrawFn, value: Any) -> Any:
    """The value as is (mostly), or another: of its type, of another type, or None."""
    if draw(st.integers(0, 9)) < 8:
        return value
    return draw(st.sampled_from([None, 1, True, 1.0, "1", "skill", "draft", b"x", value]))


@st.composite
def _case(draw: st.DrawFn) -> tuple[list[tuple[Any, ...]], dict[str, Summary], set[str], set[str]]:
    latest = {i: draw(_summary()) for i in _IDS if draw(st.integers(0, 5))}
    batch = []
    for _ in range(draw(st.integers(0, 8))):
        entity_id = draw(st.sampled_from(_IDS))
        known = latest.get(entity_id) or draw(_summary())
        key = versions.expected_key(known.kind, known.name, None)
        said = [known.version, known.log_index, known.first, entity_id.encode(), known.kind,
                known.status, known.name, known.category, key]  # fmt: skip
        head = [_changed(draw, value) for value in said]
        head[3] = (
            entity_id.encode() if draw(st.integers(0, 9)) else b"\xff" + entity_id[1:].encode()
        )
        batch.append(tuple(head) if draw(st.integers(0, 19)) else list(head))
    if draw(st.booleans()):  # as the audit holds what its workers send (state.Held)
        latest = unpacked(packed(latest))[0]
    wanted = set(draw(st.lists(st.sampled_from(_IDS), max_size=2)))
    shared = set(draw(st.lists(st.sampled_from(_IDS), max_size=2)))
    return batch, latest, wanted, shared


def _ascii_skill(head: Any, latest: dict[str, Summary]) -> bool:
    """A head of the shape the C decides for itself: a tuple of plain types, of a skill
    named in ASCII whose key it compiles."""
    known = latest.get(head[3].decode(errors="replace"))
    types = (int, int, int, bytes, str, str, str, (str, type(None)), str)
    return (
        type(head) is tuple
        and all(
            type(v) in (t if isinstance(t, tuple) else (t,))
            for v, t in zip(head, types, strict=True)
        )
        and known is not None
        and known.kind == "skill"
        and type(known.name) is str
        and NATIVE.skill_key(known.name, *name_keys._tables()) is not None
    )


def _did_nothing(head: tuple[Any, ...], latest: dict[str, Summary], wanted: set[str]) -> bool:
    """``one_head._head`` of the head found nothing and handed nothing on."""
    state = AuditState(None, "t", latest=latest)  # type: ignore[arg-type]
    gathered = rules.Rules(wanted)
    uncovered: list[Any] = []
    first_unread: list[Any] = []
    one_head._head(state, head, gathered, uncovered, first_unread)
    return not (state.findings or uncovered or first_unread or gathered.refs or gathered.checks)


@settings(max_examples=500, deadline=None)
@given(_case())
def test_the_compiled_filter_leaves_out_only_what_its_twin_does(case):
    batch, latest, wanted, shared = case
    compiled = NATIVE.heads_to_check(batch, latest, wanted, shared, *name_keys._tables())
    checked = {id(head) for head in compiled}
    assert [head for head in batch if id(head) in checked] == compiled  # in order, as given
    for head in batch:
        if id(head) not in checked:  # left out: checking it does nothing
            assert _did_nothing(head, latest, wanted), head
            assert head[3].decode() not in shared
            assert plain_heads.plain(head, latest, wanted, shared)
        elif head[3].isascii():  # checked: the twin checks it too, or it is not plain to C
            assert not plain_heads.plain(head, latest, wanted, shared) or not _ascii_skill(
                head, latest
            ), head


def test_plain_skill_heads_are_left_out_both_ways(monkeypatch):
    latest = {
        i: summary((n, 1, b"d" * 32, "draft", "skill", None, f"skill {n}", None, n))
        for n, i in enumerate(_IDS)
    }
    keys = [name_keys.skill_key(f"skill {n}") for n in range(len(_IDS))]
    batch = [
        (1, n, n, i.encode(), "skill", "draft", f"skill {n}", None, keys[n])
        for n, i in enumerate(_IDS)
    ]
    batch[2] = (*batch[2][:5], "certified", *batch[2][6:])  # a status rewritten
    expected = [batch[2], batch[3]]
    held = unpacked(packed(latest))[0]  # as the audit holds what its workers send
    for native in (NATIVE, None):
        monkeypatch.setattr(map_memory, "NATIVE", native)
        assert plain_heads.to_check(batch, latest, {_IDS[3]}, set()) == expected
        assert plain_heads.to_check(batch, held, {_IDS[3]}, set()) == expected
