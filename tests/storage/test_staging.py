"""``shared.storage.staging``: binary COPY rows exactly as PostgreSQL reads them, and chunks
made ahead on a helper thread without losing order, errors or the thread."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from shared.storage import staging
from shared.storage.urls import pg8000_url


def test_binary_rows_are_read_back_exactly(database_url):
    engine = create_engine(pg8000_url(database_url), poolclass=NullPool)
    ident = uuid.uuid4()
    rows = [
        staging.row((staging.int4(7), staging.field(ident.bytes), staging.field(b"\x00\xff"),
                     staging.text("é\t\n\\"), staging.text(None)))
        for _ in range(2)
    ] + [staging.row((staging.int4(-1), staging.field(None), staging.field(b""),
                      staging.text(""), staging.text("x")))]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(text("CREATE TEMPORARY TABLE t (i integer, u uuid, b bytea, s text, n text)"))
        staging.copy_in(conn, "t", ("i", "u", "b", "s", "n"), staging.payload(rows))
        got = conn.execute(text("SELECT i, CAST(u AS text), b, s, n FROM t")).all()
    assert [tuple(r) for r in got] == [
        (7, str(ident), b"\x00\xff", "é\t\n\\", None),
        (7, str(ident), b"\x00\xff", "é\t\n\\", None),
        (-1, None, b"", "", "x"),
    ]
    engine.dispose()


def test_a_malformed_payload_is_the_databases_error_and_nothing_stays(database_url):
    engine = create_engine(pg8000_url(database_url), poolclass=NullPool)
    with engine.connect() as conn:
        conn.execute(text("CREATE TEMPORARY TABLE t (i integer)"))
        bad = staging.payload([staging.row((staging.field(b"\x00\x01"),))])  # 2 bytes: no int4
        with pytest.raises(DBAPIError):
            staging.copy_in(conn, "t", ("i",), bad)
        conn.rollback()
        assert conn.execute(text("SELECT 1")).scalar_one() == 1  # the connection goes on
    engine.dispose()


def test_chunks_come_in_order_and_are_made_ahead():
    made = []

    def chunks():
        for i in range(10):
            made.append(i)
            yield bytes([i])

    got = []
    with staging.ahead(chunks(), depth=2) as stream:
        time.sleep(0.05)
        assert made[:3] == [0, 1, 2]  # made from the start, before the caller asked
        for chunk in stream:
            time.sleep(0.01)
            got.append(chunk[0])
            assert len(made) >= min(10, len(got))  # the next one was being made meanwhile
    assert got == list(range(10))


def test_the_helpers_error_reaches_the_caller():
    def chunks():
        yield b"a"
        raise ValueError("broken chunk")

    seen = []
    with pytest.raises(ValueError, match="broken chunk"), staging.ahead(chunks()) as stream:
        for chunk in stream:
            seen.append(chunk)
    assert seen == [b"a"]


def test_a_caller_that_stops_early_stops_the_helper():
    def endless():
        while True:
            yield b"x"

    before = threading.active_count()
    with pytest.raises(RuntimeError, match="the caller's own"), staging.ahead(endless(), 1) as s:
        assert next(s) == b"x"
        raise RuntimeError("the caller's own error")
    assert threading.active_count() == before
    with staging.ahead(endless(), depth=1):  # never asked for a chunk at all
        pass
    assert threading.active_count() == before
