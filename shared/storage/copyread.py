"""Rows of a query read as one binary ``COPY (SELECT ...) TO STDOUT``, not as pg8000 rows.

pg8000 decodes every value from text and builds a row object per row, and hands COPY data
over one protocol message at a time through a read, a dispatch and a write call each; for
an audit's millions of log entries that driver work was most of the read. Here the query
goes as one simple-protocol message (one round trip), the COPY data is read off the
connection's socket in large blocks, and each row's length-prefixed values are split with
``struct`` in one loop over the block. Every other message (errors, notices, the command's
completion, ReadyForQuery) goes to pg8000's own handlers, so the connection's state and its
errors are exactly what pg8000 would have made of them.

The binary format does not promise one row per CopyData message: a row split across
messages (or blocks) waits, unfinished, for the rest. COPY takes no bind parameters, so a
query's values are inlined; ``int_literal`` lets only integers through, ``bytea_literal``
only bytes, as hex digits.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pg8000 import core
from pg8000.exceptions import InterfaceError
from sqlalchemy.engine import Connection

from shared.integrity import map_memory

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_HEADER = struct.Struct("!11sii")  # signature, flags, header extension length
_SHORT = struct.Struct("!h")
_INT = struct.Struct("!i")
_BLOCK = 1 << 18  # bytes asked of the socket at a time
RANGE = 1 << 16  # rows a caller reads per statement, so that each stays inside the timeout


@dataclass(frozen=True)
class Column:
    """How a column's binary value is decoded; ``width`` is the length it has when it is
    well formed (rows whose leading columns all have theirs are split with one ``struct``
    call; any other row, NULLs included, takes the general path, so it is only a guess)."""

    kind: str  # "int", "text" or "bytes"
    width: int | None = None


INT2 = Column("int", 2)
INT4 = Column("int", 4)
INT8 = Column("int", 8)
TEXT = Column("text")
BYTEA = Column("bytes")


def raw(width: int) -> Column:
    """A column whose bytes come as they are sent, usually ``width`` of them: a hash, or a
    UUID cast to text."""
    return Column("bytes", width)


_STRUCT_CODES: dict[tuple[str, int | None], str] = {
    ("int", 2): "h",
    ("int", 4): "i",
    ("int", 8): "q",
}


def _int(value: bytes) -> int:
    return int.from_bytes(value, "big", signed=True)


# How each kind of value becomes Python; None: the bytes as they came (bytea).
_CONVERT: dict[str, Callable[[bytes], Any] | None] = {
    "int": _int,
    "text": bytes.decode,  # UTF-8, the client encoding pg8000 sets
    "bytes": None,
}


class CopyFormatError(ValueError):
    """The COPY stream is not the binary format this reader expects."""


class BinaryCopyReader:
    """Decodes the binary COPY format, fed to it in pieces of any size, into row tuples."""

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = tuple(columns)
        self.rows: list[tuple[Any, ...]] = []
        self.finished = False  # the trailer was read
        self._pending = b""  # an unfinished row (or header) waiting for more bytes
        self._header = False
        fixed: list[Column] = []
        for column in self.columns:
            if column.width is None:
                break
            fixed.append(column)
        codes = "".join("i" + _STRUCT_CODES.get((c.kind, c.width), f"{c.width}s") for c in fixed)
        self._prefix = struct.Struct("!h" + codes)
        # the same behind a CopyData message's code and length: one unpack for both
        self._message = struct.Struct("!ci" + self._prefix.format[1:])
        self._widths = tuple(c.width for c in fixed)
        self._convert = tuple(_CONVERT[c.kind] for c in self.columns)
        self._rest = self._convert[len(fixed) :]
        # the same for the extension's loop: each column's kind as one letter ("i" an int,
        # "b" bytes, "t" text; a fixed column is an int only where ``struct`` reads one)
        self._native_kinds = (
            b"".join(b"i" if (c.kind, c.width) in _STRUCT_CODES else b"b" for c in fixed),
            bytes(ord(c.kind[0]) for c in self.columns[len(fixed) :]),
        )

    def feed(self, buf: bytes, start: int, end: int) -> None:
        """Take ``buf[start:end]``, the next piece of the stream."""
        if self.finished:
            if start < end:
                raise CopyFormatError("data after the COPY trailer")
            return
        if self._pending:
            buf, start, end = self._pending + buf[start:end], 0, end - start + len(self._pending)
        if not self._header:
            if end - start < _HEADER.size:
                self._pending = buf[start:end]
                return
            signature, _flags, extension = _HEADER.unpack_from(buf, start)
            if signature != SIGNATURE:
                raise CopyFormatError("not a binary COPY stream")
            if end - start < _HEADER.size + extension:
                self._pending = buf[start:end]
                return
            start += _HEADER.size + extension
            self._header = True
        stop = self._split(buf, start, end)
        self._pending = buf[stop:end] if stop < end else b""

    def _split(self, buf: bytes, pos: int, end: int) -> int:
        """Decode every whole row of ``buf[pos:end]``; returns where the rest starts."""
        convert, width, rows, rest = self._convert, len(self.columns), self.rows, self._rest
        prefix, widths, size = self._prefix, self._widths, self._prefix.size
        unpack_int, unpack_short = _INT.unpack_from, _SHORT.unpack_from
        while pos + 2 <= end:
            values = prefix.unpack_from(buf, pos) if pos + size <= end else (None,)
            if values[0] == width and values[1::2] == widths:  # the usual shape
                row, todo, at = list(values[2::2]), rest, pos + size
            else:
                (count,) = unpack_short(buf, pos)
                if count == -1:
                    self.finished = True
                    if pos + 2 < end:
                        raise CopyFormatError("data after the COPY trailer")
                    return end
                if count != width:
                    raise CopyFormatError(f"a row of {count} fields, expected {width}")
                row, todo, at = [], convert, pos + 2
            for decode in todo:
                if at + 4 > end:
                    return pos
                (length,) = unpack_int(buf, at)
                at += 4
                if length < 0:
                    row.append(None)
                    continue
                if at + length > end:
                    return pos
                value = buf[at : at + length]
                at += length
                row.append(value if decode is None else decode(value))
            rows.append(tuple(row))
            pos = at
        return pos

    def messages(self, buf: bytes, pos: int, size: int) -> int:
        """The usual stream: CopyData messages of one well-formed row each, from ``pos``
        in ``buf[:size]``, decoded in one loop. Returns where the first message it leaves
        to ``feed`` (any other shape, an unfinished one, another message) starts."""
        if self._pending or not self._header or self.finished:
            return pos
        native = map_memory.NATIVE
        if native is not None:  # the loop below, compiled; it stops where this would
            fixed, kinds = self._native_kinds
            stop: int = native.copy_messages(buf, pos, size, fixed, self._widths, kinds, self.rows)
            return stop
        rows, rest, width, widths = self.rows, self._rest, len(self.columns), self._widths
        message, head, unpack_int = self._message.unpack_from, self._message.size, _INT.unpack_from
        try:
            while pos + head <= size:
                values = message(buf, pos)
                end = pos + 1 + values[1]
                if values[0] != b"d" or end > size or values[2] != width:
                    return pos
                if values[3::2] != widths:
                    return pos
                row = list(values[4::2])
                at = pos + head
                for decode in rest:
                    (length,) = unpack_int(buf, at)
                    at += 4
                    if length < 0:
                        row.append(None)
                        continue
                    value = buf[at : at + length]
                    at += length
                    row.append(value if decode is None else decode(value))
                if at != end:  # not one row filling its message: ``feed`` decides
                    return pos
                rows.append(tuple(row))
                pos = end
        except struct.error:
            pass  # a length pointing past the block: ``feed`` decides
        return pos


def int_literal(value: int) -> str:
    """An integer as SQL text: one of the two kinds of value these queries inline."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"not an integer: {value!r}")
    return str(value)


def bytea_literal(value: bytes) -> str:
    """Bytes as SQL text, a hex ``bytea`` literal (hex digits only): the other kind."""
    if not isinstance(value, bytes):
        raise TypeError(f"not bytes: {value!r}")
    return f"'\\x{value.hex()}'::bytea"


def copy_batches(
    conn: Connection, query: str, columns: Sequence[Column]
) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of ``query`` (a SELECT with its values inlined), in the connection's current
    transaction, as lists of tuples (one value per column) a socket read at a time.

    Memory holds one read's rows, whatever the query's size. Stopping early still reads the
    rest of the reply (unused), so the connection can run its next statement.
    """
    link = conn.connection.dbapi_connection  # a pg8000 connection
    if link is None or link._sock is None:
        raise InterfaceError("connection is closed")
    statement = f"COPY ({query}) TO STDOUT (FORMAT binary)"
    reply = _Reply(link, core.Context(statement), BinaryCopyReader(columns))
    link.send_QUERY(statement)
    core._flush(link._sock)
    try:
        while not reply.done:
            reply.read()
            if reply.reader.rows and reply.failure is None and reply.context.error is None:
                rows, reply.reader.rows = reply.reader.rows, []
                yield rows
    finally:
        while not reply.done:
            reply.reader.rows.clear()
            reply.read()
    if reply.context.error is not None:
        raise reply.context.error
    if reply.failure is not None:
        raise reply.failure
    if not reply.reader.finished:
        raise CopyFormatError("the COPY stream ended without its trailer")


class _Reply:
    """The server's messages for one COPY statement, read a block at a time: CopyData to
    the reader, everything else to pg8000's handlers, up to ReadyForQuery. A malformed
    stream is still read to its end (``failure``), so the connection stays usable."""

    def __init__(self, link: Any, context: Any, reader: BinaryCopyReader) -> None:
        self.link, self.context, self.reader = link, context, reader
        self.failure: CopyFormatError | None = None
        self.done = False
        self._buf, self._pos = b"", 0

    def read(self) -> None:
        """Read one block and handle every whole message it completes."""
        buf = self._buf[self._pos :] + _more(self.link._sock, _BLOCK)
        pos, size, handlers = 0, len(buf), self.link.message_types
        feed, messages, unpack_int = self.reader.feed, self.reader.messages, _INT.unpack_from
        while pos + 5 <= size:
            if self.failure is None:
                pos = messages(buf, pos, size)
                if pos + 5 > size:
                    break
            end = pos + 1 + unpack_int(buf, pos + 1)[0]
            if end > size:
                break
            code = buf[pos]
            if code == _COPY_DATA:
                if self.failure is None:
                    try:
                        feed(buf, pos + 5, end)
                    except CopyFormatError as exc:
                        self.failure = exc
            elif code == _COPY_OUT:
                if buf[pos + 5] != 1 and self.failure is None:
                    self.failure = CopyFormatError("the server sent COPY in text format")
            else:
                handlers[bytes((code,))](buf[pos + 5 : end], self.context)
                if code == _READY:
                    self.done = True
            pos = end
        self._buf, self._pos = buf, pos


_COPY_DATA, _COPY_OUT, _READY = (
    core.COPY_DATA[0],
    core.COPY_OUT_RESPONSE[0],
    core.READY_FOR_QUERY[0],
)


def _more(sock: Any, size: int) -> bytes:
    try:
        block = sock.read1(size)
    except OSError as exc:
        raise InterfaceError("network error") from exc
    if not block:
        raise InterfaceError("network error")
    return block
