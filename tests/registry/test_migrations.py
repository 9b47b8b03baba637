"""Migrations: one head; from an empty database up, down to base, and up again."""

from __future__ import annotations

import os

from alembic.script import ScriptDirectory
from sqlalchemy import text

from shared import config
from shared.storage import migrate


def test_there_is_exactly_one_alembic_head():
    heads = ScriptDirectory.from_config(migrate.alembic_config()).get_heads()
    assert len(heads) == 1


def test_upgrade_from_empty_downgrade_to_base_and_upgrade_again(
    pg_server, database_url, monkeypatch
):
    from databases import create_database, superuser_engine

    fresh = create_database(pg_server)
    monkeypatch.setenv("DATABASE_URL", fresh)
    config.settings.cache_clear()
    try:
        migrate.upgrade()
        migrate.upgrade()  # idempotent
        engine = superuser_engine(fresh)
        with engine.connect() as conn:
            tables = {
                r[0]
                for r in conn.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname='public'")
                )
            }
        assert {
            "log_entries",
            "log_heads",
            "entity_heads",
            "log_nodes",
            "checkpoints",
            "audit_runs",
        } <= tables
        migrate.downgrade("base")
        with engine.connect() as conn:
            tables = {
                r[0]
                for r in conn.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname='public'")
                )
            }
        assert tables <= {"alembic_version"}
        migrate.upgrade()
        engine.dispose()
    finally:
        monkeypatch.setenv("DATABASE_URL", database_url)
        config.settings.cache_clear()
    assert os.environ["DATABASE_URL"] == database_url
