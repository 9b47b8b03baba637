"""Alembic environment: runs migrations as the owner, on the engine shared/ builds."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import text

from shared.storage.migrate import owner_engine

config = context.config


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        _run(connectable)
        return
    engine = owner_engine()
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    # Read by the roles migration: the IAM database users that act as the application role.
    users = os.environ.get("PLANT_APP_DB_USERS", "")
    connection.execute(text("SELECT set_config('plant.app_db_users', :u, false)"), {"u": users})
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) mode is not supported; run against a database")
run_migrations_online()
