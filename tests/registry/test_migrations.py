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


# The database's access list, as text (``plant_app=T/...`` once 0009 granted TEMPORARY).
_ACL = "SELECT CAST(datacl AS text) FROM pg_database WHERE datname = current_database()"


def test_a_migrating_user_who_may_not_grant_temporary_is_told_what_to_run(superuser):
    """0009 grants TEMPORARY to plant_app only where the migrating user may; anyone else is
    warned with the grant to run, and nothing changes."""
    upgrade = migrate.migration_module("0009_temporary_tables").UPGRADE
    with superuser.connect() as conn:  # rolled back at the end, the role with it
        conn.execute(text("CREATE ROLE plant_test_no_grant"))
        before = conn.execute(text(_ACL)).scalar_one()
        notices = conn.connection.dbapi_connection.notices
        notices.clear()
        conn.execute(text("SET ROLE plant_test_no_grant"))
        conn.execute(text(upgrade))
        conn.execute(text("RESET ROLE"))
        said = [n[b"M"].decode() for n in notices if n.get(b"V") == b"WARNING"]
        database = conn.execute(text("SELECT current_database()")).scalar_one()
        assert said == [
            f"bulk creates need GRANT TEMPORARY ON DATABASE {database} TO plant_app; "
            "run it as the database owner (plant_test_no_grant may not grant it)"
        ]
        assert conn.execute(text(_ACL)).scalar_one() == before


def test_the_application_role_holds_temporary_by_its_own_grant(superuser):
    with superuser.connect() as conn:
        acl = conn.execute(text(_ACL)).scalar_one()
    assert "plant_app=T/" in acl
