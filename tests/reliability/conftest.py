"""Fixtures for the reliability tests: real `plant serve` processes on databases of their own.

The attack/fault table these tests feed is the session plugin in tests/reliability_table.py.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.support.databases import create_database, superuser_engine
from tests.support.plant_server import PlantServer, PrivatePostgres


@pytest.fixture
def serve(database_url: str, tmp_path: Path) -> Iterator[Callable[..., PlantServer]]:
    """Start `plant serve` on a database: a fresh one on the test server unless one is given.

    The server shares the session's key directory, so ``make_token`` tokens are accepted.
    Every server started is stopped at the end of the test.
    """
    started: list[PlantServer] = []

    def start(url: str | None = None, **env: str) -> PlantServer:
        server = PlantServer(
            database_url=url or create_database(os.environ["PLANT_TEST_SERVER_URL"], "plant_rel"),
            data_dir=Path(os.environ["PLANT_DATA_DIR"]),
            log_dir=tmp_path,
            env=env,
        )
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def owner_engine() -> Iterator[Callable[[str], Engine]]:
    """Superuser engines on the servers' databases (the checks read past row-level security)."""
    engines: list[Engine] = []

    def make(url: str) -> Engine:
        engines.append(superuser_engine(url))
        return engines[-1]

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL of this test's own, outside pytest's temporary root (which pytest keeps
    private to root, while PostgreSQL runs as another user when the tests run as root)."""
    import pgserver

    parent = Path(tempfile.mkdtemp(prefix="plant-private-pg-"))
    parent.chmod(0o755)
    server = pgserver.get_server(parent / "pg", cleanup_mode="delete")
    try:
        yield PrivatePostgres(server)
    finally:
        server.cleanup()
        shutil.rmtree(parent, ignore_errors=True)
