"""One network round trip per statement on pg8000 connections.

pg8000 1.31 runs a statement with parameters (and every COMMIT and ROLLBACK) as three
exchanges, waiting for the server after each: Parse + Sync, then Describe + Sync, then
Bind + Execute + Sync. Cloud SQL is a network away, so a "one-statement" write cost three
round trips and a read transaction ten. The extended query protocol lets a client send
Parse, Bind, Describe (portal), Execute and Sync at once and then read every answer, which
is what libpq does; the server's replies (ParseComplete, BindComplete, RowDescription or
NoData, the rows, CommandComplete, ReadyForQuery) are the same messages pg8000 already
handles, in the same order, so its own reader decodes them. An error in any step makes the
server skip to the Sync and report it once, as before.

Parameters are still sent as text with the types pg8000 gives them, and results are still
text (format 0), so values are encoded and decoded exactly as before. COPY (a ``stream``)
keeps pg8000's own exchange: in copy-in mode the server ignores a Sync sent ahead.

pg8000 also rewrites every statement's placeholders (``%s`` -> ``$1``) by scanning its text
a character at a time in Python, on every execution: some 40 us for the write statement, as
much as the rest of a write's driver work. For the positional styles the result depends on
the text alone, so ``convert_paramstyle`` below remembers it per statement text (the
registry runs a few dozen texts); the named styles are passed to pg8000's own as before.

A transaction that ``begin_with_next`` opens costs no round trip of its own: its BEGIN goes
in the same burst as the next statement (Parse, Bind and Execute of BEGIN, then the
statement's messages, one Sync), where pg8000 sends it as a query of its own and waits. Both
are one implicit block until the Sync, so if BEGIN fails the statement is skipped, never run
outside the transaction; once BEGIN has run the block is a transaction the Sync leaves open.

pg8000 also leaves Nagle's algorithm on. A statement bigger than its 8 KiB write buffer
leaves in two segments, and Nagle holds the second until the server acknowledges the first:
a delayed ACK, about one more round trip for every large write. TCP_NODELAY sends at once;
with everything written in one flush it adds no small packets.
"""

from __future__ import annotations

import functools
import socket
import types
from typing import Any

from pg8000 import core, legacy
from pg8000.exceptions import InterfaceError

_DESCRIBE_PORTAL = core._create_message(core.DESCRIBE, core.PORTAL + core.NULL_BYTE)


_scan = legacy.convert_paramstyle  # pg8000's own: (style, text, args) -> (text, values)


@functools.lru_cache(maxsize=1024)
def _positional(style: str, query: str) -> str:
    return _scan(style, query, ())[0]


def convert_paramstyle(style: str, query: str, args: Any) -> tuple[str, Any]:
    """pg8000's conversion, remembered per text for the positional styles (whose values are
    the arguments as given); the named ones scan as before."""
    if style in ("format", "numeric", "qmark"):
        return _positional(style, query), args
    return _scan(style, query, args)


legacy.convert_paramstyle = convert_paramstyle  # what pg8000's Cursor.execute calls


def one_round_trip(connection: Any) -> None:
    """Make each statement on this pg8000 connection a single round trip."""
    connection.execute_unnamed = types.MethodType(_execute_unnamed, connection)
    connection.execute_simple = types.MethodType(_execute_simple, connection)
    sock = getattr(connection, "_usock", None)
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


_BEGIN_PENDING = "_plant_begin_pending"  # set on a pg8000 connection by begin_with_next
_BEGIN = "BEGIN"


def begin_with_next(connection: Any) -> None:
    """Open a transaction on this (autocommit) pg8000 connection with its next statement, in
    that statement's round trip."""
    sender = getattr(connection.execute_unnamed, "__func__", None)
    if sender is not _execute_unnamed:  # pg8000's own would run the statement without BEGIN
        raise RuntimeError("begin_with_next needs a connection made by one_round_trip")
    setattr(connection, _BEGIN_PENDING, True)


def begin_pending(connection: Any) -> bool:
    """Whether ``begin_with_next`` was called and no statement has sent the BEGIN yet; clears
    it (for a body that ends without a statement)."""
    return bool(connection.__dict__.pop(_BEGIN_PENDING, False))


def _execute_unnamed(
    self: Any, statement: str, vals: Any = (), oids: Any = (), stream: Any = None
) -> Any:
    if stream is not None:  # COPY: pg8000's own exchange, after the BEGIN if one is pending
        if begin_pending(self):
            type(self).execute_simple(self, _BEGIN)
        return type(self).execute_unnamed(self, statement, vals, oids, stream)
    params = core.make_params(self.py_types, vals)  # may refuse a value: before sending
    context = core.Context(statement)
    if self._sock is None:
        raise InterfaceError("connection is closed")
    if begin_pending(self):
        self.send_PARSE(core.NULL_BYTE, _BEGIN, ())
        self.send_BIND(core.NULL_BYTE, ())
        core._write(self._sock, core.EXECUTE_MSG)
    self.send_PARSE(core.NULL_BYTE, statement, oids)
    self.send_BIND(core.NULL_BYTE, params)
    core._write(self._sock, _DESCRIBE_PORTAL)
    core._write(self._sock, core.EXECUTE_MSG)
    core._write(self._sock, core.SYNC_MSG)
    core._flush(self._sock)
    self.handle_messages(context)
    return context


def _execute_simple(self: Any, statement: str) -> Any:
    """pg8000's simple query; a pending BEGIN leads the same query (a failed BEGIN skips the
    rest of it)."""
    if begin_pending(self):
        statement = f"{_BEGIN};\n{statement}"
    return type(self).execute_simple(self, statement)
