"""Migrations: one head; from an empty database up, down to base, and up again."""

from __future__ import annotations

import os

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from shared import config, errors
from shared.registry import writes
from shared.storage import migrate, receipt_rows


def test_there_is_exactly_one_alembic_head():
    heads = ScriptDirectory.from_config(migrate.alembic_config()).get_heads()
    assert len(heads) == 1


def test_upgrade_from_empty_downgrade_to_base_and_upgrade_again(
    pg_server, database_url, monkeypatch
):
    from tests.support.databases import create_database, superuser_engine

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


def _skill(name: str, reason: str | None = None) -> dict:
    body = {"name": name, "description": "d", "category": "technical"}
    return body if reason is None else {**body, "amendment_reason": reason}


def test_0010_rekeys_heads_keeps_look_alikes_written_before_and_stays_auditable(
    pg_server, database_url, monkeypatch
):
    """A database written under the old key (name trimmed and case folded) holds "Rust" and
    its fullwidth look-alike, both live. 0010 gives every skill head its two readings, keeps
    both (nothing lost, no logged byte changed, a full audit clean), and refuses new ones."""
    from shared import audit
    from shared.rules import names
    from shared.security.principal import Principal
    from shared.storage import engine as engine_module
    from tests.support.databases import create_database, superuser_engine

    fresh = create_database(pg_server)
    monkeypatch.setenv("DATABASE_URL", fresh)
    config.settings.cache_clear()
    engine_module.reset()
    superuser = superuser_engine(fresh)
    author = Principal("alice", "t-legacy", frozenset({"author", "reader"}))
    auditor = Principal("audrey", "t-legacy", frozenset({"auditor"}))
    log = "SELECT idx, body, digest, leaf_hash, field_hashes FROM log_entries ORDER BY idx"
    heads = "SELECT name, unique_key FROM entity_heads WHERE kind = 'skill' ORDER BY name"
    try:
        migrate.upgrade("0009")
        with monkeypatch.context() as old:  # the registry as it wrote keys before 0010
            old.setattr(names, "unique_key", lambda name: "name:" + name.strip().casefold())
            old.setattr(receipt_rows, "insert", lambda conn, tenant, row: None)  # and before 0013
            old.setattr(
                receipt_rows, "insert_and_commit", lambda conn, rows: conn.exec_driver_sql("COMMIT")
            )
            rust = writes.create(author, "skills", _skill("Rust"), "r").body["identity"]["id"]
            wide = writes.create(author, "skills", _skill("\uff32ust"), "r")
            wide_id = wide.body["identity"]["id"]
            writes.create(author, "skills", _skill("Perl"), "r")
            with pytest.raises(errors.Conflict):  # the old key did fold case
                writes.create(author, "skills", _skill("RUST"), "r")
        with superuser.connect() as conn:
            logged = conn.execute(text(log)).all()
            assert conn.execute(text(heads)).all() == [
                ("Perl", "name:perl"),
                ("Rust", "name:rust"),
                ("\uff32ust", "name:\uff52ust"),
            ]
        engine_module.reset()
        migrate.upgrade()
        with superuser.connect() as conn:
            assert conn.execute(text(log)).all() == logged  # no logged byte changed
            rekeyed = conn.execute(text(heads)).all()
        assert rekeyed == [(name, names.unique_key(name)) for name in ("Perl", "Rust", "\uff32ust")]
        run, _ = audit.run(auditor, {"mode": "full"})
        assert run["findings"] == []
        with superuser.connect() as conn:  # the three entries older than 0013, covered once
            covered = "SELECT first_idx, count FROM log_receipts ORDER BY first_idx"
            # then the audit's own entries, each with its receipt: its seal's map commit
            # (index 3) and its report (index 4)
            assert conn.execute(text(covered)).all() == [(0, 3), (3, 1), (4, 1)]
            types = "SELECT idx, entry_type FROM log_entries WHERE idx >= 3 ORDER BY idx"
            assert conn.execute(text(types)).all() == [(3, "map_commit"), (4, "audit")]
        # From now on: a new look-alike is refused, naming a holder ...
        with pytest.raises(errors.Conflict) as caught:
            writes.create(author, "skills", _skill("\u211bust"), "r")
        assert caught.value.extensions["existing_id"] in {rust, wide_id}
        # ... the legacy look-alike may still be amended under its own name ...
        kept = writes.amend(
            author,
            "skills",
            wide_id,
            {**_skill("\uff32ust", "text"), "description": "e"},
            '"v1"',
            "r",
        )
        assert kept.version == 2 and kept.body["identity"]["name"] == "\uff32ust"
        # ... but once renamed, it cannot take the reading back.
        writes.amend(author, "skills", wide_id, _skill("Lua", "rename"), '"v2"', "r")
        with pytest.raises(errors.Conflict) as caught:
            writes.amend(author, "skills", wide_id, _skill("\uff32ust", "back"), '"v3"', "r")
        assert caught.value.extensions["existing_id"] == rust
        run, _ = audit.run(auditor, {"mode": "full"})
        assert run["findings"] == []
    finally:
        superuser.dispose()
        engine_module.reset()
        monkeypatch.setenv("DATABASE_URL", database_url)
        config.settings.cache_clear()
