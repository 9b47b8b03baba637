"""Run the Alembic migrations as the schema owner (never as the application role)."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from shared.config import ROOT, Settings, settings
from shared.errors import ConfigurationError
from shared.storage.urls import pg8000_url


def owner_engine(cfg: Settings | None = None) -> Engine:
    """An engine logged in as the migrating user, with no ``SET ROLE``."""
    cfg = cfg or settings()
    if cfg.instance_connection_name:
        from shared.storage.connector import connector_engine  # cloud path only

        return connector_engine(cfg, app_role=False)
    if not cfg.database_url:
        raise ConfigurationError("DATABASE_URL is not set")
    return create_engine(pg8000_url(cfg.database_url), poolclass=NullPool)


def alembic_config() -> Config:
    return Config(str(ROOT / "alembic.ini"))


def upgrade(revision: str = "head") -> None:
    command.upgrade(alembic_config(), revision)


def downgrade(revision: str = "base") -> None:
    command.downgrade(alembic_config(), revision)


def migration_module(stem: str) -> ModuleType:
    """A migration module by its file name (``0006_node_reads``), so that a downgrade can
    restore what an earlier migration defined instead of repeating its text (migration file
    names are not importable names)."""
    path = ROOT / "migrations" / "versions" / f"{stem}.py"
    spec = importlib.util.spec_from_file_location(f"plant_migration_{stem}", path)
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"no migration {stem}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
