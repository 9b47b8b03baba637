"""Without pgvector the feature is a clear 501 naming the extension, and nothing else breaks
(issue 28, item 5): on the embedded server with the extension absent from a fresh database,
and on the machine's PostgreSQL 15 on 127.0.0.1:5432 when one is reachable there (the one
test allowed to use it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared import config
from shared.registry import skill_vectors
from shared.storage import engine, migrate
from tests.registry.conftest import Api
from tests.support.databases import create_database, superuser_engine

# A Debian PostgreSQL 15 with no pgvector package, as on the developers' machines.
NO_VECTOR_SERVER = os.environ.get(
    "PLANT_TEST_NO_VECTOR_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SKILL = {"name": "Python coding", "description": "Writes Python.", "category": "technical"}


@contextmanager
def _served_by(server: str, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The process pointed at a fresh database of ``server``, migrated; then back."""
    fresh = create_database(server)
    monkeypatch.setenv("DATABASE_URL", fresh)
    config.settings.cache_clear()
    engine.reset()
    try:
        migrate.upgrade()
        yield fresh
    finally:
        engine.reset()
        monkeypatch.setenv("DATABASE_URL", database_url)
        config.settings.cache_clear()
        admin = superuser_engine(server)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{fresh.rsplit("/", 1)[1]}"'))
        admin.dispose()


def _every_similarity_route_is_a_501_and_create_still_works(api: Api, url: str, make_token) -> None:
    made = api.post("/skills", SKILL)
    assert made.status_code == 201, made.json
    entity_id = made.json["identity"]["id"]
    for response in (
        api.get("/skills?similar_to=Python"),
        api.get(f"/skills/{entity_id}/similar"),
        api.post("/skills?check_similar=true", {**SKILL, "name": "Python"}),
        api.post("/skills?refuse_similar=true", {**SKILL, "name": "Python"}),
        api.client.post(
            "/registry/skills/embeddings/refresh",
            headers={"Authorization": f"Bearer {make_token(api.tenant, 'auditor')}"},
        ),
    ):
        assert response.status_code == 501, response.json
        assert response.content_type == "application/problem+json"
        assert response.json["missing"] == "vector (pgvector)"
        assert "'vector' (pgvector) is not installed" in response.json["detail"]
    admin = superuser_engine(url)
    with admin.connect() as conn:  # the two refused creates wrote nothing
        names = conn.execute(
            text("SELECT name FROM entity_heads WHERE tenant_id = :t"), {"t": api.tenant}
        ).scalars()
        assert list(names) == ["Python coding"]
    admin.dispose()


def test_a_database_without_the_extension_answers_501_naming_it(
    api: Api, pg_server: str, database_url: str, monkeypatch: pytest.MonkeyPatch, make_token
) -> None:
    """The embedded server has pgvector; a fresh database of it where the extension was never
    created (as 0017 leaves a server without pgvector: no table, no extension) stands for
    one that lacks it."""
    with _served_by(pg_server, database_url, monkeypatch) as url:
        admin = superuser_engine(url)
        with admin.connect() as conn:
            conn.execute(text("DROP TABLE skill_embeddings"))
            conn.execute(text("DROP EXTENSION vector"))
        admin.dispose()
        _every_similarity_route_is_a_501_and_create_still_works(api, url, make_token)


def test_the_local_postgresql_15_without_pgvector_migrates_and_answers_501(
    api: Api, database_url: str, monkeypatch: pytest.MonkeyPatch, make_token
) -> None:
    try:
        admin = superuser_engine(NO_VECTOR_SERVER)
        with admin.connect() as conn:
            has_vector = conn.execute(
                text("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")
            ).scalar_one()
        admin.dispose()
    except DBAPIError as exc:
        pytest.skip(f"no PostgreSQL reachable at {NO_VECTOR_SERVER}: {exc.__class__.__name__}")
    if has_vector:
        pytest.skip(f"{NO_VECTOR_SERVER} has pgvector: nothing to degrade there")
    with _served_by(NO_VECTOR_SERVER, database_url, monkeypatch) as url:
        admin = superuser_engine(url)
        with admin.connect() as conn:
            assert conn.execute(text("SELECT to_regclass('skill_embeddings')")).scalar() is None
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            head = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
            assert version == head  # every migration ran (0017's table left out)
            reason = skill_vectors.unavailable(conn)
        admin.dispose()
        assert reason is not None and "'vector' (pgvector) is not installed" in reason
        _every_similarity_route_is_a_501_and_create_still_works(api, url, make_token)
        migrate.downgrade("0012")
        migrate.upgrade()
