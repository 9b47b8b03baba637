"""Shared fixtures: a real PostgreSQL for the whole session, a migrated database, tokens.

The server is DATABASE_URL's if set, else an embedded one (pgserver) in a temporary
directory: the suite never depends on a server that merely happens to listen on 5432.
Each session gets a fresh database; each test gets its own tenant, so tests never need to
clean the append-only ledger.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from shared.security import authenticators
from tests.support.databases import create_database, superuser_engine

ROOT = Path(__file__).resolve().parents[1]

pytest_plugins = ["tests.support.reliability_table"]  # the attack/fault table at the end of a run


def _server_url(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, object | None]:
    url = os.environ.get("PLANT_TEST_SERVER_URL") or os.environ.get("DATABASE_URL")
    if url:
        return url, None
    from shared.storage import embedded

    # Not under pytest's basetemp: another pytest session starting meanwhile resets that
    # folder to mode 0700, and the server (its own user when run as root) loses its socket.
    parent = Path(tempfile.mkdtemp(prefix="plant-test-pg-"))
    parent.chmod(0o755)
    server, uri = embedded.start(parent / "pg", cleanup="delete")
    return uri, server


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """libpq URL of a PostgreSQL server with superuser rights (admin database)."""
    url, server = _server_url(tmp_path_factory)
    os.environ["PLANT_TEST_SERVER_URL"] = url  # child processes reuse the same server
    yield url
    del server  # keeps the embedded server alive until here


@pytest.fixture(scope="session")
def database_url(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, migrated database; the process settings point at it for the session."""
    url = create_database(pg_server)
    data_dir = tmp_path_factory.mktemp("data")
    previous = {k: os.environ.get(k) for k in ("DATABASE_URL", "PLANT_DATA_DIR", "PLANT_ENV")}
    os.environ["DATABASE_URL"] = url
    os.environ["PLANT_DATA_DIR"] = str(data_dir)
    os.environ["PLANT_ENV"] = "local"
    _reset_process_state()
    from shared.cli import bootstrap

    bootstrap.prepare_local()
    yield url
    _reset_process_state()
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _reset_process_state() -> None:
    from shared import config
    from shared.storage import engine

    engine.reset()
    config.settings.cache_clear()
    authenticators.authenticator.cache_clear()
    from shared.evidence import report_signing

    report_signing.reset()


@pytest.fixture(scope="session")
def superuser(database_url: str) -> Iterator[Engine]:
    """The attacker's (or operator's) view: a superuser engine on the test database."""
    eng = superuser_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def clients(database_url: str) -> dict[str, Any]:
    """A test client of each function, built as Cloud Functions builds it
    (``functions_framework.create_app`` on the root main.py)."""
    import functions_framework

    import main
    from shared.config import ROOT

    return {
        name: functions_framework.create_app(
            target=name, source=str(ROOT / "main.py")
        ).test_client()
        for name in main.FUNCTIONS
    }


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_token(database_url: str) -> Callable[..., str]:
    from shared.config import settings
    from shared.security.local_tokens import LocalTokens

    tokens = LocalTokens.from_settings(settings())

    def make(tenant: str, *roles: str, subject: str = "alice", ttl: int = 600) -> str:
        return tokens.issue(subject, tenant, list(roles) or ["reader"], ttl=ttl)

    return make
