"""The changed heads' map records (``map_feed.head_records``): the compiled loop
(``plant_map_native.head_records``) gives what its pure twin gives, record for record and in
the same order, on valid heads and on every way a head can have no value (no status, a name
out of shape, a leaf of another length, a number or index out of range, a certificate out of
range, no version at all) and on inputs not of the plain shape it handles (asked of Python)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import TypeVar

import plant_map_native
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.audit import map_feed
from shared.integrity import map_memory

T = TypeVar("T")

_NAMES = st.one_of(
    st.sampled_from(["skill", "job_role", "certified", "draft", "x", "a" * 32]),
    st.sampled_from(["", "a" * 33, "Skill", "1abc", "sk-ill", "skïll", "s kill", "_a"]),
    st.text(max_size=5),
)
_U64 = st.one_of(
    st.integers(min_value=0, max_value=3),
    st.sampled_from([2**64 - 1, 2**64, -1, 2**70]),
    st.integers(min_value=-(2**65), max_value=2**65),
)
_IDS = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: u.hex),  # no dashes: not the plain shape, asked of Python
)
_VERSION = st.tuples(
    _U64,
    _NAMES,
    _U64,
    st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=40)),
    st.one_of(st.none(), _NAMES, st.just("certified")),
)


def _pure(run: Callable[[], T]) -> T:
    """``run()`` with the extension switched off, as ``PLANT_AUDIT_PURE=1`` does."""
    native, map_memory.NATIVE = map_memory.NATIVE, None
    try:
        return run()
    finally:
        map_memory.NATIVE = native


def _both(versions, certificates, entities) -> tuple[bytes, list[str]]:
    compiled = plant_map_native.head_records(versions, certificates, entities, map_feed._record)
    pure = _pure(lambda: map_feed.head_records(versions, certificates, entities))
    assert compiled == pure
    return pure


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(_IDS, st.one_of(st.none(), _VERSION), st.one_of(st.none(), _U64)), max_size=12
    )
)
def test_compiled_and_pure_give_the_same_records(heads):
    versions = {e: v for e, v, _ in heads if v is not None}
    certificates = {e: c for e, _, c in heads if c is not None}
    _both(versions, certificates, [e for e, _, _ in heads])


def test_a_valid_head_is_its_key_and_its_values_hash():
    entity = str(uuid.uuid4())
    version = (7, "skill", 2, bytes(32), "certified")
    records, named = _both({entity: version}, {entity: 9}, [entity])
    value = map_feed.head_value(version, entity, 9)
    assert value is not None and named == [entity]
    assert records == map_feed.entity_key(entity) + hashlib.sha256(value).digest()
    assert _both({entity: (*version[:4], None)}, {}, [entity]) == (b"", [])  # no status
    assert _both({}, {entity: 9}, [entity]) == (b"", [])  # no version


def test_what_is_not_of_the_plain_shape_is_asked_of_python():
    entity = str(uuid.uuid4())
    asked = []

    def slow(version, entity_id, certificate):
        asked.append(entity_id)
        return map_feed._record(version, entity_id, certificate)

    odd = {entity: [7, "skill", 2, bytes(32), "draft"]}  # a list, not a tuple
    records, named = plant_map_native.head_records(odd, {}, [entity], slow)
    assert records == map_feed._record(odd[entity], entity, None) and named == [entity]
    bool_number = {entity: (7, "skill", True, bytes(32), "draft")}
    records, _ = plant_map_native.head_records(bool_number, {}, [entity], slow)
    assert records == map_feed._record(bool_number[entity], entity, None)
    assert asked == [entity, entity]
    with pytest.raises(ValueError, match="64 bytes"):
        plant_map_native.head_records(bool_number, {}, [entity], lambda *a: b"short")


def _settled_both(versions: dict) -> dict:
    """``map_feed.settle`` compiled and pure, asserted to give the same versions."""
    compiled = dict(versions)
    plant_map_native.head_digests(compiled, map_feed.settled)
    pure = dict(versions)
    _pure(lambda: map_feed.settle(pure))
    assert compiled == pure
    return pure


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(_IDS, _VERSION, st.one_of(st.none(), _U64)), max_size=12),
)
def test_settled_versions_give_the_records_their_tuples_give(heads):
    """A full audit's replay holds each version settled (its value's hash, None for none,
    the tuple while a certificate can change it): compiled and pure settle alike, and the
    records made of settled versions are those made of the tuples, whatever certificates
    come after (a settled value is one no certificate changes)."""
    versions = {e: v for e, v, _ in heads}
    certificates = {e: c for e, _, c in heads if c is not None}
    settled = _settled_both(versions)
    for entity_id, version in settled.items():
        if isinstance(version, tuple):  # kept only while a certificate can change its value
            assert version is versions[entity_id] and version[4] == "certified"
    entities = list(versions)
    assert _both(settled, certificates, entities) == _both(versions, certificates, entities)


def test_a_settled_version_is_its_values_hash_or_none():
    entity = str(uuid.uuid4())
    version = (7, "skill", 2, bytes(32), "draft")
    value = map_feed.head_value(version, entity, None)
    assert value is not None
    assert _settled_both({entity: version}) == {entity: hashlib.sha256(value).digest()}
    assert _settled_both({entity: (*version[:4], None)}) == {entity: None}  # no status
    certified = (*version[:4], "certified")
    assert _settled_both({entity: certified})[entity] is certified  # waits for its certificate
    odd = {entity.replace("-", ""): version}  # not the plain shape: asked of Python
    assert _settled_both(odd) == {e: map_feed.settled(v, e) for e, v in odd.items()}
