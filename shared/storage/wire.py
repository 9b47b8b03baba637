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
    sock = getattr(connection, "_usock", None)
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _execute_unnamed(
    self: Any, statement: str, vals: Any = (), oids: Any = (), stream: Any = None
) -> Any:
    if stream is not None:
        return type(self).execute_unnamed(self, statement, vals, oids, stream)
    params = core.make_params(self.py_types, vals)  # may refuse a value: before sending
    context = core.Context(statement)
    if self._sock is None:
        raise InterfaceError("connection is closed")
    self.send_PARSE(core.NULL_BYTE, statement, oids)
    self.send_BIND(core.NULL_BYTE, params)
    core._write(self._sock, _DESCRIBE_PORTAL)
    core._write(self._sock, core.EXECUTE_MSG)
    core._write(self._sock, core.SYNC_MSG)
    core._flush(self._sock)
    self.handle_messages(context)
    return context
