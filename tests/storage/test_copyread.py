"""``shared.storage.copyread``: rows of a binary COPY decoded exactly, however the stream is
cut, with the general path and the one-row-per-message path agreeing; a malformed stream or
a server error is raised and leaves the connection usable."""

from __future__ import annotations

import io
import struct
from typing import Any

import pytest
from pg8000.exceptions import DatabaseError
from sqlalchemy import text

from shared.storage import copyread
from shared.storage.copyread import BinaryCopyReader, CopyFormatError
from shared.storage.engine import database

COLUMNS = (
    copyread.INT8,
    copyread.INT4,
    copyread.INT2,
    copyread.raw(4),
    copyread.TEXT,
    copyread.BYTEA,
)
ROWS = [
    (1, 2, 3, b"abcd", "plain", b"\x00\xff"),
    (-(2**63), -(2**31), -(2**15), b"wxyz", "é ✓", b""),
    (2**63 - 1, 2**31 - 1, 2**15 - 1, b"abc", "", b"x" * 5000),  # raw(4) not 4 long
    (None, 5, None, None, None, None),  # NULLs, in the fixed-width columns too
    (7, 8, 9, b"\x01\x02\x03\x04", "last", b"\x01"),
]
HEADER = copyread.SIGNATURE + struct.pack("!ii", 0, 0)
TRAILER = struct.pack("!h", -1)


def _value(column: copyread.Column, value: Any) -> bytes:
    if value is None:
        return struct.pack("!i", -1)
    if column.kind == "int":
        raw = value.to_bytes(column.width, "big", signed=True)
    elif column.kind == "text":
        raw = value.encode()
    else:
        raw = value
    return struct.pack("!i", len(raw)) + raw


def _row(values: tuple[Any, ...]) -> bytes:
    return struct.pack("!h", len(values)) + b"".join(
        _value(c, v) for c, v in zip(COLUMNS, values, strict=True)
    )


def _stream() -> bytes:
    return HEADER + b"".join(_row(r) for r in ROWS) + TRAILER


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 19, 64, 1000, 1 << 20])
def test_the_stream_cut_anywhere_gives_the_same_rows(piece):
    stream = _stream()
    reader = BinaryCopyReader(COLUMNS)
    for at in range(0, len(stream), piece):
        reader.feed(stream, at, min(at + piece, len(stream)))
    assert reader.rows == ROWS
    assert reader.finished


def test_a_row_split_across_pieces_waits_for_its_end():
    reader = BinaryCopyReader(COLUMNS)
    row = _row(ROWS[0])
    reader.feed(HEADER + row[:10], 0, len(HEADER) + 10)
    assert reader.rows == []
    reader.feed(row, 10, len(row))
    assert reader.rows == [ROWS[0]]
    assert not reader.finished


@pytest.mark.parametrize(
    "stream, message",
    [
        (b"PGCOPY\n\xff\r\n\x01" + HEADER[11:] + TRAILER, "not a binary COPY"),
        (HEADER + struct.pack("!h", 2) + _value(copyread.INT8, 1) * 2, "2 fields, expected 6"),
        (HEADER + TRAILER + b"\x00", "after the COPY trailer"),
    ],
)
def test_a_malformed_stream_is_refused(stream, message):
    with pytest.raises(CopyFormatError, match=message):
        BinaryCopyReader(COLUMNS).feed(stream, 0, len(stream))


def _message(code: bytes, payload: bytes) -> bytes:
    return code + struct.pack("!i", len(payload) + 4) + payload


class _Link:
    """What ``_Reply`` uses of a pg8000 connection: its socket, and the handlers of the
    messages that are not CopyData (recorded here)."""

    def __init__(self, data: bytes, block: int) -> None:
        self._sock = io.BufferedReader(io.BytesIO(data), block)
        self.seen: list[bytes] = []
        self.message_types = {
            code: (lambda data, context, code=code: self.seen.append(code))
            for code in (b"c", b"C", b"Z")
        }


@pytest.mark.parametrize("block", [8, 100, 1 << 16])
@pytest.mark.parametrize("layout", ["row per message", "split and joined"])
def test_copy_data_messages_in_any_layout_give_the_same_rows(block, layout, monkeypatch):
    if layout == "row per message":
        payloads = [HEADER] + [_row(r) for r in ROWS] + [TRAILER]
    else:  # rows cut across messages, two rows in one
        stream = _stream()
        payloads = [stream[:30], stream[30:31], stream[31:200], stream[200:]]
    data = (
        _message(b"H", b"\x01\x00\x06" + b"\x00\x01" * 6)
        + b"".join(_message(b"d", p) for p in payloads)
        + _message(b"c", b"")
        + _message(b"C", b"COPY 5\x00")
        + _message(b"Z", b"T")
    )
    monkeypatch.setattr(copyread, "_BLOCK", block)
    link = _Link(data, block)
    reply = copyread._Reply(link, None, BinaryCopyReader(COLUMNS))
    while not reply.done:
        reply.read()
    assert reply.failure is None
    assert reply.reader.rows == ROWS and reply.reader.finished
    assert link.seen == [b"c", b"C", b"Z"]


def test_int_literal_lets_only_integers_through():
    assert copyread.int_literal(12) == "12"
    for bad in ("1; DROP TABLE x", 1.5, True, None):
        with pytest.raises(TypeError):
            copyread.int_literal(bad)  # type: ignore[arg-type]


QUERY = (
    "SELECT i::bigint, (i * 2)::int, (i % 3)::smallint, "
    "CASE WHEN i % 4 = 0 THEN NULL ELSE int4send(i) END, "
    "'row ' || i || ' é', decode(repeat('ab', i % 700), 'hex') FROM generate_series(1, {n}) i"
)


def _expected(n: int) -> list[tuple[Any, ...]]:
    return [
        (
            i,
            i * 2,
            i % 3,
            None if i % 4 == 0 else i.to_bytes(4, "big"),
            f"row {i} é",
            b"\xab" * (i % 700),
        )
        for i in range(1, n + 1)
    ]


def test_rows_from_the_server_match_what_it_was_asked(database_url, tenant):
    with database().transaction(tenant) as conn:
        got = [
            row
            for batch in copyread.copy_batches(conn, QUERY.format(n=3000), COLUMNS)
            for row in batch
        ]
        assert got == _expected(3000)
        # the transaction goes on: the same connection runs its next statement
        assert conn.execute(text("SELECT current_setting('plant.tenant')")).scalar() == tenant


def test_stopping_early_leaves_the_connection_usable(database_url, tenant):
    with database().transaction(tenant) as conn:
        batches = copyread.copy_batches(conn, QUERY.format(n=20000), COLUMNS)
        first = next(batches)
        batches.close()
        assert first and first[0] == _expected(1)[0]
        assert conn.execute(text("SELECT 41 + 1")).scalar() == 42


def test_a_server_error_mid_stream_is_raised_and_the_connection_recovers(database_url, tenant):
    failing = "SELECT i::bigint, (10 / (5000 - i))::int FROM generate_series(1, 10000) i"
    with pytest.raises(DatabaseError, match="22012"), database().transaction(tenant) as conn:
        for _ in copyread.copy_batches(conn, failing, (copyread.INT8, copyread.INT4)):
            pass
    with database().transaction(tenant) as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1


def test_a_stream_of_another_shape_is_refused_and_the_connection_recovers(database_url, tenant):
    with database().transaction(tenant) as conn:
        with pytest.raises(CopyFormatError, match="1 fields, expected 6"):
            for _ in copyread.copy_batches(conn, "SELECT 1::bigint", COLUMNS):
                pass
        assert conn.execute(text("SELECT 2")).scalar() == 2
