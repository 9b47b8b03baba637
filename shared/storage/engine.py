"""The SQLAlchemy engine the functions use, always acting as the application role.

Every pooled connection runs ``SET ROLE plant_app`` when it is opened, so even when
DATABASE_URL names a superuser (a developer machine, the tests) the grants, the append-only
triggers and FORCE row-level security hold exactly as they do in the cloud. Every
transaction names its tenant with ``set_config('plant.tenant', ..., true)``; the RLS policies
read it, so a query that forgets its WHERE clause still sees only one tenant.
"""

from __future__ import annotations

import functools
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import InterfaceError as SAInterfaceError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.config import Settings, settings
from shared.errors import ConfigurationError, ServiceUnavailable
from shared.storage.sessions import act_as_app_role
from shared.storage.urls import pg8000_url

F = TypeVar("F", bound=Callable[..., Any])

# What pg_export_snapshot() returns: hex transaction and snapshot numbers, e.g. 00000003-0000001B-1
_SNAPSHOT_ID = re.compile(r"[0-9A-F]{8}-[0-9A-F]{8}-[0-9]+")
# SQLSTATEs that mean "the database cannot serve this now", not "the request is wrong".
_UNAVAILABLE = {"57014", "57P01", "57P02", "57P03", "53300", "08000", "08003", "08006"}


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], dict):
        return args[0].get("C")
    return None


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` is the database being down, restarting, overloaded or too slow."""
    if isinstance(exc, OperationalError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, SAInterfaceError):
        # pg8000 also uses InterfaceError for misuse ("in failed transaction block"):
        # only lost or refused connections mean the database is unavailable.
        # "communication error": a unix socket with no server behind it (a stopped database).
        text_ = str(getattr(exc, "orig", exc)).lower()
        words = ("network", "closed", "connect", "timed out", "communication")
        return any(word in text_ for word in words)
    return _sqlstate(exc) in _UNAVAILABLE


def sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE of a driver error, if it has one."""
    return _sqlstate(exc)


RETRYABLE = {"40001", "40P01"}  # serialization failure, deadlock detected


def retry_transient(attempts: int = 4, base_delay: float = 0.02) -> Callable[[F], F]:
    """Re-run a whole transactional operation when PostgreSQL aborts it for a serialization
    failure or a deadlock: bounded attempts, exponential backoff with full jitter. The
    operation must do all its work inside one transaction, so a retry never doubles a write."""

    def decorate(operation: F) -> F:
        @functools.wraps(operation)
        def run(*args: Any, **kwargs: Any) -> Any:
            for attempt in range(attempts):
                try:
                    return operation(*args, **kwargs)
                except DBAPIError as exc:
                    if sqlstate(exc) not in RETRYABLE:
                        raise
                    if attempt == attempts - 1:
                        raise ServiceUnavailable("the database is busy; retry shortly") from exc
                    time.sleep(random.uniform(0, base_delay * 2**attempt))
            raise AssertionError("unreachable")

        return run  # type: ignore[return-value]

    return decorate


def local_engine(
    database_url: str, pool_size: int, statement_timeout_ms: int, pool_timeout: float = 5
) -> Engine:
    engine = create_engine(
        pg8000_url(database_url),
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=pool_timeout,
        pool_recycle=1800,
    )
    act_as_app_role(engine, statement_timeout_ms)
    return engine


@contextmanager
def _unavailable_is_503() -> Iterator[None]:
    """Driver errors meaning the database is down, restarting or too slow, and a pool with
    no free connection, become ServiceUnavailable (503 + Retry-After)."""
    try:
        yield
    except DBAPIError as exc:
        if is_unavailable(exc):
            raise ServiceUnavailable("the database is unavailable; retry shortly") from exc
        raise
    except PoolTimeout as exc:  # every pooled connection is busy: shed load, don't hang
        raise ServiceUnavailable("the service is at capacity; retry shortly") from exc


def _roll_back(conn: Connection) -> None:
    """Roll back a ``begun`` transaction after its body failed; a connection the database
    dropped (restart, timeout) cannot be, and is discarded instead of pooled."""
    if conn.invalidated:  # SQLAlchemy saw the connection drop: nothing left to roll back
        return
    raw = conn.connection.dbapi_connection
    try:
        if raw is not None:
            raw.rollback()
    except Exception:
        conn.invalidate()


class Database:
    """A pool of application-role connections and tenant-scoped transactions over it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def transaction(
        self, tenant: str, *, snapshot: bool = False, shared_snapshot: str | None = None
    ) -> Iterator[Connection]:
        """One transaction with ``plant.tenant`` set; commits on success, rolls back on error.

        ``snapshot`` makes it a read-only REPEATABLE READ transaction, so a long export sees
        one consistent state; ``shared_snapshot`` (what ``pg_export_snapshot()`` returned in
        another such transaction, still open) makes it see that transaction's state exactly.
        Driver errors meaning the database is unavailable become ServiceUnavailable (503).
        """
        if shared_snapshot is not None and not _SNAPSHOT_ID.fullmatch(shared_snapshot):
            raise ValueError("not an exported snapshot's identifier")
        with _unavailable_is_503(), self.engine.begin() as conn:
            if snapshot or shared_snapshot is not None:
                conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
            if shared_snapshot is not None:  # SET takes no parameters: checked just above
                conn.execute(text(f"SET TRANSACTION SNAPSHOT '{shared_snapshot}'"))
            conn.execute(
                text("SELECT set_config('plant.tenant', :tenant, true)"), {"tenant": tenant}
            )
            yield conn

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A connection on which each statement is its own transaction: one round trip for a
        one-statement write (see ``ledger.append_version``), no BEGIN and no COMMIT."""
        with _unavailable_is_503(), self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            if raw is None:  # only once invalidated: a connection just checked out has its link
                raise SAInterfaceError("autocommit", None, Exception("the connection was closed"))
            raw.rollback()  # a no-op unless something left a transaction open
            raw.autocommit = True
            try:
                yield conn
            finally:
                raw.autocommit = False

    @contextmanager
    def begun(self) -> Iterator[Connection]:
        """A transaction opened by BEGIN on an autocommit connection, for a body whose last
        statement also commits it (``receipt_rows.insert_and_commit``): an append and its
        receipt in two round trips (BEGIN sent with the body's first statement,
        ``wire.begin_with_next``, the append; then the receipt and COMMIT),
        where ``transaction`` takes five. No tenant is set: the append functions set it.
        Rolled back if the body raises or ends without committing."""
        from shared.storage import wire  # pg8000's, loaded with the engine's first connection

        with self.autocommit() as conn:
            raw = conn.connection.dbapi_connection
            wire.begin_with_next(raw)
            try:
                yield conn
            except BaseException:
                wire.begin_pending(raw)  # a body that failed before its first statement
                _roll_back(conn)  # the body's error is the one raised, not the rollback's
                raise
            never_begun = wire.begin_pending(raw)
            if raw is not None and (never_begun or raw._in_transaction):  # pg8000's state
                raw.rollback()
                raise RuntimeError("a begun() transaction ended without committing")

    def ping(self) -> None:
        """Run a real query; raise ServiceUnavailable if the database does not answer."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1")).scalar_one()
        except (DBAPIError, PoolTimeout) as exc:
            raise ServiceUnavailable("the database is unavailable") from exc


def build_engine(cfg: Settings) -> Engine:
    if cfg.instance_connection_name:
        from shared.storage.connector import connector_engine  # cloud path only

        return connector_engine(cfg)
    if not cfg.database_url:
        raise ConfigurationError("DATABASE_URL is not set (make run / make test set it)")
    return local_engine(cfg.database_url, cfg.db_pool_size, cfg.db_statement_timeout_ms)


_lock = threading.Lock()
_database: Database | None = None


def database() -> Database:
    """The process-wide Database, created on first use so importing stays cheap."""
    global _database
    if _database is None:
        with _lock:
            if _database is None:
                _database = Database(build_engine(settings()))
    return _database


def reset() -> None:
    """Dispose the process-wide pool (tests and forked workers)."""
    global _database
    with _lock:
        if _database is not None:
            _database.engine.dispose()
        _database = None
