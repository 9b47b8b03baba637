"""The benchmark database: a fresh migrated database on DATABASE_URL's server or an embedded
PostgreSQL, a superuser engine for seeding and baselines, and the plain tables the baselines
write to (no integrity at all: an id and the bytes). ``PLANT_BENCH_KEEP`` names a database
to keep between runs instead of a fresh one."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from shared.security import authenticators

_server: Any = None
external = False  # True when DATABASE_URL named the server (not the embedded one)


def setup_database() -> None:
    """Point DATABASE_URL at a fresh migrated database; keep any embedded server alive.

    With ``PLANT_BENCH_KEEP=<name>`` (and DATABASE_URL naming a server) the run uses that
    database instead, created when missing and kept, with its keys under a data directory
    named after it: a 1,000,000-entry tenant is seeded once and reused by later runs."""
    global _server, external
    url = os.environ.get("DATABASE_URL")
    keep = os.environ.get("PLANT_BENCH_KEEP")
    external = bool(url)
    if keep:
        if not url:
            raise RuntimeError("PLANT_BENCH_KEEP needs DATABASE_URL naming a server")
        os.environ["DATABASE_URL"] = _kept_database(url, keep)
        data_dir = str(Path(tempfile.gettempdir()) / f"plant-bench-keep-{keep}")
        Path(data_dir).mkdir(exist_ok=True)
    else:
        if not url:
            from shared.storage import embedded

            _server, url = embedded.start(Path(tempfile.mkdtemp(prefix="plant-bench-")), "delete")
        os.environ["DATABASE_URL"] = _create_database(url)
        if external:  # an embedded server goes with its data directory; another server stays
            atexit.register(_drop_database, url, os.environ["DATABASE_URL"])
        data_dir = tempfile.mkdtemp(prefix="plant-bench-data-")
        atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    os.environ["PLANT_DATA_DIR"] = data_dir
    os.environ["PLANT_ENV"] = "local"
    reset_process()
    from shared.cli import bootstrap

    bootstrap.prepare_local()


def _create_database(server_url: str) -> str:
    import uuid

    from sqlalchemy.engine import make_url

    from shared.storage.urls import pg8000_url

    name = f"plant_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg8000_url(server_url), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _kept_database(server_url: str, name: str) -> str:
    """The URL of database ``name`` on the server, created if it does not exist yet."""
    from sqlalchemy.engine import make_url

    from shared.storage.urls import pg8000_url

    if not name.replace("_", "").isalnum():
        raise ValueError("PLANT_BENCH_KEEP is a database name of letters, digits and _")
    admin = create_engine(pg8000_url(server_url), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if found.first() is None:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _drop_database(server_url: str, database_url: str) -> None:
    """Drop the benchmark's database from a server it does not own, once its pool is gone."""
    from sqlalchemy.engine import make_url

    from shared.storage import engine
    from shared.storage.urls import pg8000_url

    engine.reset()
    name = make_url(database_url).database
    admin = create_engine(pg8000_url(server_url), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def reset_process() -> None:
    """Forget the cached settings, pool and authenticator (after changing the environment)."""
    from shared import config
    from shared.storage import engine

    engine.reset()
    config.settings.cache_clear()
    authenticators.authenticator.cache_clear()


def superuser() -> Engine:
    """An engine as DATABASE_URL's (super)user, outside the application role and its RLS."""
    from shared.storage.urls import pg8000_url

    return create_engine(pg8000_url(os.environ["DATABASE_URL"]), poolclass=NullPool)


def server_version() -> str:
    eng = superuser()
    with eng.connect() as conn:
        version = conn.execute(text("SHOW server_version")).scalar_one()
    eng.dispose()
    return str(version)


def plain_table(name: str) -> None:
    """``name (id bigserial, body bytea)`` that the application role may write and read."""
    eng = superuser()
    with eng.begin() as conn:
        conn.execute(
            text(f"CREATE TABLE IF NOT EXISTS {name} (id bigserial PRIMARY KEY, body bytea)")
        )
        conn.execute(text(f"GRANT INSERT, SELECT ON {name} TO plant_app"))
        conn.execute(text(f"GRANT USAGE ON SEQUENCE {name}_id_seq TO plant_app"))
    eng.dispose()
