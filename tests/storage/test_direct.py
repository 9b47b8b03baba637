"""``shared.storage.direct``: the append's statements skip SQLAlchemy's execution context but
not what it gives a statement: the same errors, a 503 for a lost connection, a connection
left mid-reply never pooled again, the time counted."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, MultipleResultsFound, NoResultFound

from shared.errors import ServiceUnavailable
from shared.logs import db_time
from shared.storage import direct
from shared.storage.engine import database

# Each refused by the server with its own SQLSTATE; a temporary table, as the app role may.
FAILING = [
    ("INSERT INTO pg_temp.t VALUES (1)", "23505"),  # unique violation: an IntegrityError
    ("SELECT 1 / (SELECT count(*) FROM pg_temp.t WHERE k < 0)", "22012"),
    ("SELEC 1", "42601"),
    ("SELECT CAST(%s AS uuid)", "22P02"),  # a parameter the server refuses
]


def _refusal(run, conn, statement: str) -> DBAPIError:
    conn.exec_driver_sql("CREATE TEMPORARY TABLE t (k int PRIMARY KEY) ON COMMIT DROP")
    conn.exec_driver_sql("INSERT INTO pg_temp.t VALUES (1)")
    with pytest.raises(DBAPIError) as raised:
        run(conn, statement, ("not a uuid",) if "%s" in statement else ())
    return raised.value


@pytest.mark.parametrize(("statement", "state"), FAILING)
def test_a_refused_statement_raises_what_sqlalchemy_raises(database_url, tenant, statement, state):
    """The same exception class (``IntegrityError`` for 23505, which the writes turn into a
    409), the same driver error and statement inside it, and the transaction usable for a
    rollback as before."""
    with database().transaction(tenant) as conn:
        ours = _refusal(direct.run, conn, statement)
        conn.rollback()
    with database().transaction(tenant) as conn:
        theirs = _refusal(lambda c, s, p: c.exec_driver_sql(s, p), conn, statement)
        conn.rollback()
    assert type(ours) is type(theirs), (ours, theirs)
    assert ours.orig.args[0]["C"] == theirs.orig.args[0]["C"] == state
    assert type(ours.orig) is type(theirs.orig)
    assert ours.statement == theirs.statement == statement
    assert not ours.connection_invalidated


def test_a_connection_the_server_dropped_is_a_503_and_is_invalidated(database_url, superuser):
    """The backend is terminated under a pooled connection: the next direct statement is a
    503 (``ServiceUnavailable``), and the connection is invalidated, not handed out again."""
    with pytest.raises(ServiceUnavailable), database().autocommit() as conn:
        pid = direct.scalar_one(conn, "SELECT pg_backend_pid()")
        with superuser.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        try:
            direct.run(conn, "SELECT 1")
        finally:
            invalidated = conn.invalidated
    assert invalidated
    with database().autocommit() as conn:
        assert direct.scalar_one(conn, "SELECT pg_backend_pid()") != pid


def test_a_statement_interrupted_mid_reply_never_goes_back_to_the_pool(database_url):
    """An interrupt (here a KeyboardInterrupt while the reply is read) leaves the protocol
    in an unknown state: the interrupt is raised as it is and the connection invalidated."""
    with database().autocommit() as conn:
        raw = conn.connection.dbapi_connection
        pid = direct.scalar_one(conn, "SELECT pg_backend_pid()")

        def interrupted(context):
            raise KeyboardInterrupt

        raw.handle_messages = interrupted
        with pytest.raises(KeyboardInterrupt):
            direct.run(conn, "SELECT %s", (1,))
        assert conn.invalidated
    with database().autocommit() as conn:
        assert direct.scalar_one(conn, "SELECT pg_backend_pid()") != pid


def test_rows_values_and_time(database_url):
    """Rows as the driver reads them; ``scalar_one`` refuses none or several; the statement's
    time counts in the request's database time."""
    db_time.set(0.0)
    with database().autocommit() as conn:
        assert direct.run(conn, "SELECT CAST(%s AS int), CAST(%s AS bytea)", (1, b"\x00")) == [
            [1, b"\x00"]
        ]
        assert direct.run(conn, "SELECT pg_sleep(0.05)") == [[""]]
        with pytest.raises(NoResultFound):
            direct.scalar_one(conn, "SELECT 1 WHERE false")
        with pytest.raises(MultipleResultsFound):
            direct.scalar_one(conn, "SELECT generate_series(1, 2)")
    assert db_time.get() >= 0.05
