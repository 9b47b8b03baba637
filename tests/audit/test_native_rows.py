"""The extension's row loops (``native/plant_audit_rows.c``) against their pure-Python twins:
the Merkle tree hash against ``merkle.root_from_leaves``, a skill name's key against
``names.unique_key`` (ASCII names compiled, any other left to Python), and the binary COPY
message loop against ``BinaryCopyReader.messages``'s own: the same rows and the same place
to stop, on well-formed and on corrupted message streams."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.audit import name_keys, nodes
from shared.integrity import map_memory, merkle, native_rows
from shared.rules import names
from shared.storage import copyread
from shared.storage.copyread import BinaryCopyReader

NATIVE = map_memory.NATIVE
pytestmark = pytest.mark.skipif(NATIVE is None, reason="native/ is not built: `make` builds it")

_LEAF = st.binary(min_size=32, max_size=32)


@settings(max_examples=150, deadline=None)
@given(st.lists(_LEAF, max_size=70))
def test_the_compiled_mth_is_rfc_9162s(leaves):
    assert NATIVE.mth(b"".join(leaves)) == merkle.root_from_leaves(leaves)
    assert native_rows.mth(leaves) == merkle.root_from_leaves(leaves)


@settings(max_examples=150, deadline=None)
@given(st.lists(_LEAF, max_size=40))
def test_the_compiled_node_hashes_are_rfc_9162s(hashes):
    pairs = b"".join(hashes[: len(hashes) // 2 * 2])
    expected = b"".join(
        merkle.node_hash(left, right)
        for left, right in zip(hashes[::2], hashes[1::2], strict=False)
    )
    assert NATIVE.node_hashes(pairs) == merkle.node_hashes(pairs) == expected
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(map_memory, "NATIVE", None)
        assert merkle.node_hashes(pairs) == expected
    with pytest.raises(ValueError):
        merkle.node_hashes(pairs + b"x")
    with pytest.raises(ValueError):
        NATIVE.node_hashes(pairs + b"x" * 32)


def test_a_level_of_nodes_is_intact_only_of_32_byte_hashes():
    """The nodes pass hashes a level at once (``nodes._all_intact``); stored values of other
    lengths that line up with the hashes when joined are not taken as the hashes."""
    below = {i: hashlib.sha256(bytes([i])).digest() for i in range(8)}
    here = {i: merkle.node_hash(below[2 * i], below[2 * i + 1]) for i in range(4)}
    assert nodes._all_intact(below, here, [0, 1, 2, 3]) and nodes._all_intact(below, here, [])
    shifted = {**here, 1: here[1][:31], 2: here[1][31:] + here[2]}
    assert b"".join(shifted.values()) == b"".join(here.values())
    assert not nodes._all_intact(below, shifted, [0, 1, 2, 3])
    within = {**below, 2: below[2] + below[3][:1], 3: below[3][1:]}  # one pair's bytes kept
    assert nodes._all_intact(within, here, [0, 1, 2, 3])  # as merkle.node_hash takes them
    across = {**below, 1: below[1] + below[2][:1], 2: below[2][1:]}
    assert not nodes._all_intact(across, here, [0, 1, 2, 3])
    assert not nodes._all_intact(below, {**here, 3: b"x" * 32}, [0, 1, 2, 3])


def test_leaves_that_are_not_32_bytes_are_left_to_python():
    odd = [hashlib.sha256(b"a").digest(), b"short", hashlib.sha256(b"b").digest()[:31] + b"xy"]
    assert native_rows.mth(odd) == merkle.root_from_leaves(odd)
    assert native_rows.mth([b"x" * 31]) == b"x" * 31  # one leaf is its own root
    with pytest.raises(ValueError):
        NATIVE.mth(b"x" * 33)


def _compiled_key(name: str) -> str | None:
    key: str | None = NATIVE.skill_key(name, *name_keys._tables())
    return key


_ASCII = st.text(st.characters(max_codepoint=127), max_size=40)
_CONFUSING = st.text(st.sampled_from(list('aAmM01IlO|%`" \t\n\x0b\x1c\x1fzZ')), max_size=40)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_ASCII, _CONFUSING, st.text(max_size=20)))
def test_a_names_key_compiled_is_the_registrys(name):
    key = _compiled_key(name)
    if not name.isascii():
        assert key is None  # left to names.unique_key
    else:
        assert key == names.unique_key(name)
    assert name_keys.skill_key(name) == names.unique_key(name)


@pytest.mark.parametrize(
    "name",
    ["m" * 512, "m" * 513, "a" * names.MAX_READING, "a" * (names.MAX_READING + 1), "%" * 171,
     "%" * 170, "", "   ", " Rust  \t Go ", "\x00", "Part II", "Modem"],
)  # fmt: skip
def test_long_readings_and_edges_give_the_registrys_key(name):
    """A reading past MAX_READING bytes is kept as its hash by Python, not here."""
    key = _compiled_key(name)
    assert key is None or key == names.unique_key(name)
    assert name_keys.skill_key(name) == names.unique_key(name)
    assert (key is None) == any(len(r.encode()) > names.MAX_READING for r in _readings(name))


def _readings(name: str) -> tuple[str, str]:
    return names.folded(name), names.shape(name)


COLUMNS = (
    copyread.INT8,
    copyread.raw(32),
    copyread.raw(3),
    copyread.INT4,
    copyread.TEXT,
    copyread.BYTEA,
    copyread.INT8,
)
_VALUE = {
    "text": st.text(max_size=6),
    "bytes": st.binary(max_size=6),
}


def _encoded(column: copyread.Column, value: Any, width: int | None) -> bytes:
    if value is None:
        return struct.pack("!i", -1)
    if column.kind == "int":
        raw = value.to_bytes(width or column.width or 8, "big", signed=True)
    else:
        raw = value.encode() if isinstance(value, str) else value
    return struct.pack("!i", len(raw)) + raw


@st.composite
def _messages(draw: st.DrawFn, plain: bool = False) -> bytes:
    """CopyData messages of one row each, most well formed, some not (unless ``plain``):
    NULLs, other widths, short and long ints, invalid UTF-8, another message code, a length
    that lies, a row of another width."""
    out = []
    for _ in range(draw(st.integers(0, 6))):
        values = []
        for column in COLUMNS:
            if column.kind == "bytes" and column.width:
                value = draw(st.binary(min_size=column.width, max_size=column.width))
            elif column.kind == "int":
                bound = 1 << (8 * (column.width or 8) - 1)
                value = draw(st.integers(-bound, bound - 1))
            else:
                value = draw(_VALUE[column.kind])
            width = column.width
            shape = 99 if plain else draw(st.integers(0, 30))
            if shape == 4 and column is COLUMNS[-1]:
                width = 9  # an int past what the C decodes: Python's
            elif shape == 0:
                value = None
            elif shape == 1 and column.kind == "int":
                value, width = draw(st.integers(-128, 127)), 1  # a short int
            elif shape == 2 and column.kind == "bytes":
                value = value + b"!"  # another width
            elif shape == 3 and column.kind == "text":
                value = b"\xff\xfe"  # not UTF-8
            values.append(_encoded(column, value, width))
        row = struct.pack("!h", len(COLUMNS)) + b"".join(values)
        code, length = b"d", len(row) + 4
        mangle = 99 if plain else draw(st.integers(0, 30))
        if mangle == 0:
            code = b"C"
        elif mangle == 1:
            length += draw(st.integers(-12, 12))
        elif mangle == 2:
            row = struct.pack("!h", len(COLUMNS) - 1) + row[2:]
        out.append(code + struct.pack("!i", length) + row)
    return b"".join(out)


def _read(stream: bytes, native: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    """What a reader makes of CopyData messages as ``copyread._Reply.read`` hands them to it
    (``messages`` first, ``feed`` any message it leaves): its rows, and the error raised."""
    reader = BinaryCopyReader(COLUMNS)
    header = copyread.SIGNATURE + struct.pack("!ii", 0, 0)
    reader.feed(header, 0, len(header))
    pos, size, stops = 0, len(stream), []
    with monkeypatch.context() as patch:
        patch.setattr(map_memory, "NATIVE", native)
        try:
            while pos + 5 <= size:
                pos = reader.messages(stream, pos, size)
                stops.append(pos)
                if pos + 5 > size:
                    break
                end = pos + 1 + struct.unpack_from("!i", stream, pos + 1)[0]
                if not pos < end <= size:
                    break
                if stream[pos : pos + 1] == b"d":
                    reader.feed(stream, pos + 5, end)
                pos = end
        except (UnicodeDecodeError, copyread.CopyFormatError) as exc:
            return reader.rows, type(exc), stops
    return reader.rows, None, stops


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_messages())
def test_the_compiled_message_loop_reads_what_pythons_does(stream):
    with pytest.MonkeyPatch.context() as monkeypatch:
        pure = _read(stream, None, monkeypatch)
        compiled = _read(stream, NATIVE, monkeypatch)
    assert compiled[:2] == pure[:2]


@settings(max_examples=100, deadline=None)
@given(_messages(plain=True))
def test_plain_messages_are_all_read_by_the_compiled_loop(stream):
    reader = BinaryCopyReader(COLUMNS)
    header = copyread.SIGNATURE + struct.pack("!ii", 0, 0)
    reader.feed(header, 0, len(header))
    assert reader.messages(stream, 0, len(stream)) == len(stream)
    rows = list(reader.rows)
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert _read(stream, None, monkeypatch)[0] == rows


@st.composite
def _entry_rows(draw: st.DrawFn) -> tuple[list[tuple[Any, ...]], int, bytes | None]:
    """Rows of the entries pass from index ``low``, their stored hashes (joined, or None):
    bodies hashed right and wrong into their columns and the stored hashes, indices in and
    out of the joined range."""
    low = draw(st.integers(0, 5))
    rows, stored = [], []
    for n in range(draw(st.integers(0, 8))):
        body = draw(st.binary(max_size=200))
        leaf = hashlib.sha256(b"\x00" + body).digest()
        digest = hashlib.sha256(body).digest()
        other = draw(st.sampled_from([None, b"", b"x" * 32, leaf[:31]]))
        idx = low + n + draw(st.sampled_from([0, 0, 0, -1, -low - 1, 1, 100]))
        leaf_column = leaf if draw(st.booleans()) else other
        digest_column = digest if draw(st.booleans()) else other
        stored.append(leaf if draw(st.booleans()) else b"y" * 32)
        rows.append((idx, 1, digest_column, leaf_column, b"e" * 36, "version", "skill", None, body))
    joined = draw(st.sampled_from([b"".join(stored), b"".join(stored)[:-5], b"", None]))
    return rows, low, joined


@settings(max_examples=300, deadline=None)
@given(_entry_rows())
def test_the_compiled_entry_hashes_are_pythons(case):
    rows, low, stored = case
    pure = _entry_hashes(rows, low, stored, None)
    compiled = NATIVE.entry_hashes(rows, low, stored)
    assert compiled == pure
    assert native_rows.entry_hashes(rows, low, stored) == pure


def test_rows_of_another_shape_are_hashed_by_python():
    rows = [(0, 1, b"", b"", b"e" * 36, "version", "skill", None, bytearray(b"body"))]
    assert NATIVE.entry_hashes(rows, 0, None) is None
    leaf = hashlib.sha256(b"\x00body").digest()
    assert native_rows.entry_hashes(rows, 0, None) == (leaf, bytes([6]))


def _entry_hashes(rows: Any, low: int, stored: bytes | None, native: Any) -> tuple[bytes, bytes]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(map_memory, "NATIVE", native)
        return native_rows.entry_hashes(rows, low, stored)
