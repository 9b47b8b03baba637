"""Creating throw-away databases on the test server (used by fixtures and migration tests)."""

from __future__ import annotations

import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from shared.storage.urls import pg8000_url


def database_url_for(server_url: str, dbname: str) -> str:
    return make_url(server_url).set(database=dbname).render_as_string(hide_password=False)


def superuser_engine(url: str) -> Engine:
    return create_engine(pg8000_url(url), poolclass=NullPool, isolation_level="AUTOCOMMIT")


def create_database(server_url: str, prefix: str = "plant_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = superuser_engine(server_url)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return database_url_for(server_url, name)
