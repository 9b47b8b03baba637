"""Migration 0011 backfills the search columns of heads written before it (issue 23, item 7)."""

from __future__ import annotations

from sqlalchemy import text

from shared import config
from shared.storage import migrate


def test_0011_backfills_folded_names_and_tags_of_existing_heads(
    pg_server, database_url, monkeypatch
):
    from tests.support.databases import create_database, superuser_engine
    from tests.support.seeding import seed_skills

    fresh = create_database(pg_server)
    monkeypatch.setenv("DATABASE_URL", fresh)
    config.settings.cache_clear()
    engine = superuser_engine(fresh)
    try:
        migrate.upgrade("0010")
        seed_skills(engine, "t-before-a", 0, 30, tags=("seeded", "Old"))
        seed_skills(engine, "t-before-b", 0, 20)
        migrate.upgrade()
        with engine.connect() as conn:
            tags = conn.execute(
                text("SELECT tenant_id, tag, count(*) FROM entity_tags GROUP BY 1, 2 ORDER BY 1, 2")
            ).all()
            folded = conn.execute(
                text("SELECT count(*) FROM entity_heads WHERE name_folded = lower(name)")
            ).scalar_one()
        assert [tuple(r) for r in tags] == [("t-before-a", "Old", 30), ("t-before-a", "seeded", 30)]
        assert folded == 50
        migrate.downgrade("0010")
        migrate.upgrade()
    finally:
        engine.dispose()
        monkeypatch.setenv("DATABASE_URL", database_url)
        config.settings.cache_clear()
