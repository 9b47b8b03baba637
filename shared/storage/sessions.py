"""What every new connection of an engine does: act as the application role with a statement
timeout, time its statements, ping only when it may be dead, and treat lost sockets as an
unavailable database. Shared by the local engine and the Cloud SQL connector's."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError

from shared.config import APP_ROLE
from shared.errors import ServiceUnavailable
from shared.logs import db_time


def time_queries(engine: Engine) -> None:
    """Add each statement's duration to ``db_time``."""

    @event.listens_for(engine, "before_cursor_execute")
    def _before(
        conn: Any, cursor: Any, statement: Any, params: Any, context: Any, many: Any
    ) -> None:
        conn.info["plant_started"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(
        conn: Any, cursor: Any, statement: Any, params: Any, context: Any, many: Any
    ) -> None:
        started = conn.info.pop("plant_started", None)
        if started is not None:
            db_time.set(db_time.get() + time.perf_counter() - started)


IDLE_PING_SECONDS = 2.0


def ping_when_idle(engine: Engine) -> None:
    """Test a pooled connection at checkout only when it may be dead.

    SQLAlchemy's ``pool_pre_ping`` costs a round trip on every checkout, as much as a whole
    one-statement write. A connection in steady use is known to be alive, so only two kinds
    are pinged: one that sat idle for ``IDLE_PING_SECONDS`` (through a database restart,
    say), and any opened before a connection was last found dead (the server dropped them
    all). A dead one is swapped for a new one before the caller sees it.
    """
    dead_seen = [0.0]  # time.monotonic() when a connection was last found dead

    @event.listens_for(engine, "connect")
    def _connect(_dbapi_conn: Any, record: Any) -> None:
        record.info["plant_opened"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["plant_idle_since"] = time.monotonic()

    @event.listens_for(engine, "handle_error")
    def _error(context: Any) -> None:
        if context.is_disconnect:
            dead_seen[0] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        now = time.monotonic()
        idle = now - record.info.get("plant_idle_since", now) >= IDLE_PING_SECONDS
        if not idle and record.info.get("plant_opened", now) > dead_seen[0]:
            return
        try:
            cursor = dbapi_conn.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            dbapi_conn.rollback()  # never hand out a connection inside an open transaction
        except Exception as exc:  # any failure means this connection is unusable
            dead_seen[0] = time.monotonic()
            raise DisconnectionError("pooled connection is dead") from exc


def socket_errors_are_unavailable(engine: Engine) -> None:
    """pg8000 lets some socket errors out unwrapped (a broken pipe or a reset during its
    handshake, or while it reads a reply), and SQLAlchemy passes those on as they are, so a
    database going down mid-request would be a 500. Treat them as what they are: a lost
    connection (invalidated, with the pool's older ones) and a 503."""

    @event.listens_for(engine, "do_connect")  # URL engines only; a ``creator`` bypasses it
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except ConnectionError as exc:  # the DBAPI's own error, which is_unavailable knows
            raise dialect.loaded_dbapi.InterfaceError("network error") from exc

    @event.listens_for(engine, "handle_error")
    def _socket_error(context: Any) -> None:
        if isinstance(context.original_exception, ConnectionError):
            context.is_disconnect = True
            raise ServiceUnavailable("the database is unavailable; retry shortly")


def act_as_app_role(engine: Engine, statement_timeout_ms: int) -> None:
    """Make every new connection of ``engine`` act as the application role (and time its
    statements)."""
    from shared.storage import wire  # imports pg8000, which the first engine loads anyway

    event.listen(engine, "connect", lambda dbapi_conn, _record: wire.one_round_trip(dbapi_conn))
    time_queries(engine)
    socket_errors_are_unavailable(engine)
    ping_when_idle(engine)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute(f"SET ROLE {APP_ROLE}")
        cursor.execute(f"SET statement_timeout = {int(statement_timeout_ms)}")
        cursor.close()
        dbapi_conn.commit()
