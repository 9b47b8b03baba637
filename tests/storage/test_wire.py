"""``shared.storage.wire``: every statement one round trip, and nothing else changed: the
same values back, the same errors, a connection that stays usable, COPY as before."""

from __future__ import annotations

import datetime
import decimal
import io
import socket
import types
import uuid

import pg8000.dbapi
import pytest
from pg8000.exceptions import DatabaseError, InterfaceError
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from shared.storage import wire
from shared.storage.urls import pg8000_url
from tests.support import round_trips

VALUES = (
    "SELECT 1::int, 2::bigint, 'text é'::text, '\\x00ff'::bytea, '{\"a\": [1, null]}'::jsonb,"
    " '2026-11-24T10:00:00Z'::timestamptz, CAST(%s AS uuid), NULL::text, true,"
    " 1.50::numeric, ARRAY[1, 2]::int[], %s::text"
)


@pytest.fixture
def connect(database_url: str):
    """Fresh superuser connections straight from pg8000 (no pool, no engine events)."""
    engine = create_engine(pg8000_url(database_url), poolclass=NullPool)
    held = []

    def make(pipelined: bool) -> pg8000.dbapi.Connection:
        held.append(engine.raw_connection())
        conn = held[-1].dbapi_connection
        if pipelined:
            wire.one_round_trip(conn)
        return conn

    yield make
    for fairy in held:
        fairy.invalidate()
    engine.dispose()


@pytest.fixture
def pipelined(connect):
    return connect(True)


@pytest.fixture
def plain(connect):
    return connect(False)


def _trips(monkeypatch: pytest.MonkeyPatch, conn, statement: str, *args) -> int:
    cursor = conn.cursor()
    wire_log = round_trips.watch(monkeypatch)
    cursor.execute(statement, args)
    monkeypatch.undo()
    return wire_log.round_trips


def test_a_statement_with_parameters_is_one_round_trip(pipelined, plain, monkeypatch):
    pipelined.autocommit = plain.autocommit = True
    assert _trips(monkeypatch, plain, "SELECT %s::int", 1) == 3  # pg8000 on its own
    assert _trips(monkeypatch, pipelined, "SELECT %s::int", 1) == 1


def test_commit_and_rollback_are_one_round_trip_each(pipelined, monkeypatch):
    pipelined.cursor().execute("SELECT %s::int", (1,))
    watched = round_trips.watch(monkeypatch)
    pipelined.commit()
    pipelined.cursor().execute("SELECT %s::int", (2,))  # BEGIN (simple query) + statement
    pipelined.rollback()
    monkeypatch.undo()
    assert watched.round_trips == 4
    assert watched.statements == ["commit", "begin transaction", "SELECT $1::int", "rollback"]


def test_values_come_back_exactly_as_without_it(pipelined, plain):
    ident = str(uuid.uuid4())
    rows, columns = [], []
    for conn in (plain, pipelined):
        cursor = conn.cursor()
        cursor.execute(VALUES, (ident, "x" * 100_000))
        rows.append(cursor.fetchall())
        columns.append(cursor.description)
    assert rows[0] == rows[1] and columns[0] == columns[1]
    row = rows[1][0]
    assert row[:4] == [1, 2, "text é", b"\x00\xff"] and row[4] == {"a": [1, None]}
    assert row[5] == datetime.datetime(2026, 11, 24, 10, tzinfo=datetime.UTC)
    assert row[6] == uuid.UUID(ident) and row[7] is None and row[8] is True
    assert row[9] == decimal.Decimal("1.50") and row[10] == [1, 2] and len(row[11]) == 100_000


def test_row_counts_and_statements_without_rows(pipelined):
    cursor = pipelined.cursor()
    cursor.execute("CREATE TEMP TABLE wire_t (n int)")
    cursor.execute("INSERT INTO wire_t SELECT g FROM generate_series(1, %s) g", (7,))
    assert cursor.rowcount == 7
    cursor.execute("UPDATE wire_t SET n = n + %s WHERE n > 3", (1,))
    assert cursor.rowcount == 4
    cursor.execute("SELECT sum(n) FROM wire_t WHERE n > %s", (0,))
    assert cursor.fetchone() == [32]


def test_an_error_in_any_step_is_raised_once_and_the_connection_goes_on(pipelined):
    cursor = pipelined.cursor()
    with pytest.raises(DatabaseError) as parse_error:  # fails at Parse
        cursor.execute("SELEC %s", (1,))
    assert parse_error.value.args[0]["C"] == "42601"
    pipelined.rollback()
    with pytest.raises(DatabaseError) as bind_error:  # fails at Bind (the parameter)
        cursor.execute("SELECT %s::int", ("not a number",))
    assert bind_error.value.args[0]["C"] == "22P02"
    pipelined.rollback()
    with pytest.raises(DatabaseError) as run_error:  # fails at Execute
        cursor.execute("SELECT 1 / %s::int", (0,))
    assert run_error.value.args[0]["C"] == "22012"
    with pytest.raises(DatabaseError) as aborted:  # the transaction is aborted, as before
        cursor.execute("SELECT %s::int", (1,))
    assert aborted.value.args[0]["C"] == "25P02"
    pipelined.rollback()
    cursor.execute("SELECT %s::int", (5,))
    assert cursor.fetchone() == [5]


def test_a_value_the_driver_refuses_sends_nothing(pipelined, monkeypatch):
    cursor = pipelined.cursor()
    pipelined.autocommit = True
    watched = round_trips.watch(monkeypatch)
    with pytest.raises(TypeError):  # pg8000 cannot encode it as JSON
        cursor.execute("SELECT %s::jsonb", ({"a": object()},))
    monkeypatch.undo()
    assert watched.round_trips == 0 and watched.statements == []
    cursor.execute("SELECT %s::int", (3,))
    assert cursor.fetchone() == [3]


def test_copy_keeps_pg8000s_own_exchange(pipelined):
    cursor = pipelined.cursor()
    cursor.execute("CREATE TEMP TABLE wire_copy (n int, s text)")
    cursor.execute("COPY wire_copy FROM STDIN", stream=io.BytesIO(b"1\ta\n2\tb\n"))
    out = io.BytesIO()
    cursor.execute("COPY (SELECT * FROM wire_copy ORDER BY n) TO STDOUT", stream=out)
    assert out.getvalue() == b"1\ta\n2\tb\n"


def test_tcp_connections_send_at_once():
    """The test server listens on a Unix socket (no Nagle there), so a real TCP socket
    stands in for the connection's."""
    option = (socket.IPPROTO_TCP, socket.TCP_NODELAY)
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.create_connection(server.getsockname()) as tcp,
    ):
        assert tcp.getsockopt(*option) == 0
        wire.one_round_trip(types.SimpleNamespace(_usock=tcp))
        assert tcp.getsockopt(*option) != 0


def test_a_closed_connection_says_so(pipelined):
    cursor = pipelined.cursor()
    pipelined.close()
    with pytest.raises(InterfaceError):
        cursor.execute("SELECT %s::int", (1,))


TEXTS = [
    "SELECT %s, %s",
    "SELECT '%s' || %s, \"a%%b\", E'it''s \\' %s' -- %s in a comment\n, %s",
    "SELECT $$ %s $$, %%s, %s::text",
    "SELECT plant_append_version(%s, %s, CAST(%s AS uuid))",
    "",
]


@pytest.mark.parametrize("text", TEXTS)
def test_placeholders_are_converted_exactly_as_pg8000_does(text):
    args = tuple(range(text.count("%s")))
    assert wire.convert_paramstyle("format", text, args) == wire._scan("format", text, args)
    assert wire.convert_paramstyle("qmark", text, args) == wire._scan("qmark", text, args)


def test_named_styles_are_left_to_pg8000():
    args = {"a": 1, "b": 2}
    text = "SELECT :a, :b, :a"
    assert wire.convert_paramstyle("named", text, args) == ("SELECT $1, $2, $1", (1, 2))


def test_a_statement_text_is_scanned_once(monkeypatch):
    scans = []

    def counting(style, query, args):
        scans.append(query)
        return original(style, query, args)

    original = wire._scan
    monkeypatch.setattr(wire, "_scan", counting)
    wire._positional.cache_clear()
    text = "SELECT %s, 'once' /* a text of its own */"
    for args in ((1,), (2,), ("x",)):
        assert wire.convert_paramstyle("format", text, args) == (
            "SELECT $1, 'once' /* a text of its own */",
            args,
        )
    assert scans == [text]
    wire._positional.cache_clear()


def test_a_bad_placeholder_is_still_refused():
    with pytest.raises(InterfaceError):
        wire.convert_paramstyle("format", "SELECT %d", (1,))


def test_pg8000_cursors_use_the_remembered_conversion(connect):
    import pg8000.legacy

    assert pg8000.legacy.convert_paramstyle is wire.convert_paramstyle
    conn = connect(True)
    cur = conn.cursor()
    cur.execute("SELECT %s::int + 1, %s || '!'", (41, "%"))
    assert cur.fetchone() == [42, "%!"]


def _count(conn, table: str) -> int:
    cursor = conn.cursor()
    cursor.execute(f"SELECT count(*) FROM {table}")
    return int(cursor.fetchone()[0])


@pytest.fixture
def begun(pipelined):
    """An autocommit pipelined connection with a temporary table to write to."""
    pipelined.autocommit = True
    pipelined.cursor().execute("CREATE TEMP TABLE wire_begun (n int)")
    return pipelined


def test_a_pending_begin_goes_in_the_next_statements_round_trip(begun, monkeypatch):
    wire.begin_with_next(begun)
    watched = round_trips.watch(monkeypatch)
    begun.cursor().execute("INSERT INTO wire_begun VALUES (%s)", (1,))
    monkeypatch.undo()
    assert watched.round_trips == 1
    assert watched.statements == ["BEGIN", "INSERT INTO wire_begun VALUES ($1)"]
    assert begun._in_transaction  # the insert ran inside it: a rollback takes it back
    begun.rollback()
    assert _count(begun, "wire_begun") == 0
    assert not wire.begin_pending(begun)  # sent once, then gone


def test_a_pending_begin_leads_a_statement_without_parameters(begun, monkeypatch):
    wire.begin_with_next(begun)
    watched = round_trips.watch(monkeypatch)
    begun.cursor().execute("INSERT INTO wire_begun VALUES (2)")
    monkeypatch.undo()
    assert watched.round_trips == 1 and begun._in_transaction
    begun.rollback()
    assert _count(begun, "wire_begun") == 0


def test_a_failed_begin_skips_its_statement(begun, monkeypatch):
    """Never the statement outside the transaction: one Sync, so an error skips the rest."""
    monkeypatch.setattr(wire, "_BEGIN", "BEGIN ISOLATION LEVEL NONSENSE")
    wire.begin_with_next(begun)
    with pytest.raises(DatabaseError) as failed:
        begun.cursor().execute("INSERT INTO wire_begun VALUES (%s)", (3,))
    assert failed.value.args[0]["C"] == "42601"
    monkeypatch.undo()
    assert not begun._in_transaction and _count(begun, "wire_begun") == 0


def test_a_pending_begin_needs_a_pipelined_connection(plain):
    with pytest.raises(RuntimeError, match="one_round_trip"):
        wire.begin_with_next(plain)
