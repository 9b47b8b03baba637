"""The embedded PostgreSQL (pgserver wheel) used by `make run` and `make test` when
DATABASE_URL is not set, so nothing depends on a server already listening on 5432."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def start(data_dir: Path, cleanup: str | None = "stop") -> tuple[Any, str]:
    """Start (or reuse) the embedded server under ``data_dir``; return (server, libpq URL)."""
    import pgserver  # local-only dependency: imported only on this path

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode=cleanup)
    return server, server.get_uri()
