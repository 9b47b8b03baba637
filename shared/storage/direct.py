"""The append's statements on the pooled connection's own pg8000 cursor.

SQLAlchemy's ``exec_driver_sql`` wraps each statement in an execution context, its events and
a result object: some 50-80 us of CPU a statement against the driver's own call, as much as
the rest of a write's driver work. The append and its committing receipt run a fixed text with
positional values and read at most one value, so they need none of that; they go to the
connection's pg8000 cursor instead, on the same SQLAlchemy ``Connection``, in the same
transaction.

What SQLAlchemy gives a statement is kept: the engine's ``before_cursor_execute`` and
``after_cursor_execute`` listeners see it (``sessions.time_queries`` adds its time to
``db_time``; a test or a profile counts it), and a driver error, or anything that interrupts
the statement, goes through the connection's own ``_handle_dbapi_exception``, so it is wrapped
exactly as before (``IntegrityError`` for a constraint, SQLSTATE in ``orig``), the
``handle_error`` hooks run (``sessions``: a lost socket is a 503, and the pool's connections
opened before it are tested), and a connection left in an unknown state is invalidated, never
pooled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pg8000.dbapi import Error as DriverError
from sqlalchemy.engine import Connection
from sqlalchemy.exc import MultipleResultsFound, NoResultFound


def run(conn: Connection, statement: str, params: Sequence[Any] = ()) -> list[list[Any]]:
    """Run ``statement`` (``%s`` placeholders, or none and no ``params``: the simple query,
    several statements allowed) in ``conn``'s transaction; its rows."""
    cursor = None
    try:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        events = conn._has_events or conn.engine._has_events
        if events:  # as SQLAlchemy's own path dispatches them (no execution context here)
            for listener in conn.dispatch.before_cursor_execute:
                statement, params = listener(conn, cursor, statement, params, None, False)
        cursor.execute(statement, params)
        if events:
            conn.dispatch.after_cursor_execute(conn, cursor, statement, params, None, False)
        context = cursor._context  # pg8000's: the rows as read, no copy
        return [] if context is None or context.rows is None else context.rows
    except BaseException as exc:
        # As SQLAlchemy's own path: a driver error is wrapped, with its statement; anything
        # else (a socket error, an interrupt) is passed to the hooks and raised as it is.
        said = statement if isinstance(exc, DriverError) else None
        conn._handle_dbapi_exception(exc, said, params, cursor, None)


def scalar_one(conn: Connection, statement: str, params: Sequence[Any] = ()) -> Any:
    """The one value of ``statement``'s one row (SQLAlchemy's errors for none or several)."""
    rows = run(conn, statement, params)
    if len(rows) != 1:
        raise NoResultFound("no row was found") if not rows else MultipleResultsFound()
    return rows[0][0]
