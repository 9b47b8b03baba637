"""Cloud SQL through the Cloud SQL Python Connector: IAM database authentication, TLS with
ephemeral client certificates, no passwords and no public authorised networks.

One Connector per process (it holds the certificate cache and a background loop) and one
small pool per (instance, role) pair; both are made on first use and the connector module
is imported only here, so the local path never loads it.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from shared.config import Settings
from shared.errors import ConfigurationError
from shared.storage.engine import act_as_app_role

_lock = threading.Lock()
_connector: Any = None
_engines: dict[tuple[str, str, bool], Engine] = {}


def _get_connector(cfg: Settings, credentials: Any) -> Any:
    global _connector
    if _connector is None:
        from google.cloud.sql.connector import Connector, IPTypes

        options: dict[str, Any] = {
            "refresh_strategy": "lazy",  # no background refresh: Cloud Run throttles idle CPU
            "enable_iam_auth": True,
            "ip_type": IPTypes.PRIVATE if cfg.db_private_ip else IPTypes.PUBLIC,
        }
        if cfg.sqladmin_api_endpoint:
            options["sqladmin_api_endpoint"] = cfg.sqladmin_api_endpoint
        if credentials is not None:
            options["credentials"] = credentials
        _connector = Connector(**options)
    return _connector


def connector_engine(cfg: Settings, app_role: bool = True, credentials: Any = None) -> Engine:
    """An engine whose connections come from the connector, logged in as ``DB_IAM_USER``.

    ``app_role`` makes each connection act as the application role (the functions); the
    migration step passes False and acts as its own IAM user, a member of the owner role.
    """
    if not cfg.instance_connection_name or not cfg.db_iam_user:
        raise ConfigurationError("INSTANCE_CONNECTION_NAME and DB_IAM_USER must both be set")
    key = (cfg.instance_connection_name, cfg.db_iam_user, app_role)
    with _lock:
        if key in _engines:
            return _engines[key]
        connector = _get_connector(cfg, credentials)

        def connect() -> Any:
            return connector.connect(
                cfg.instance_connection_name,
                "pg8000",
                user=cfg.db_iam_user,
                db=cfg.db_name,
                enable_iam_auth=True,
            )

        engine = create_engine(
            "postgresql+pg8000://",
            creator=connect,
            pool_size=cfg.db_pool_size,
            max_overflow=0,
            pool_timeout=5,
            pool_pre_ping=True,
            pool_recycle=1800,
        )
        if app_role:
            act_as_app_role(engine, cfg.db_statement_timeout_ms)
        _engines[key] = engine
        return engine


def close() -> None:
    """Dispose every pool and close the connector (tests, and a clean shutdown)."""
    global _connector
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        if _connector is not None:
            _connector.close()
        _connector = None
