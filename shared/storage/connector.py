"""Cloud SQL through the Cloud SQL Python Connector: IAM database authentication, TLS with
ephemeral client certificates, no passwords and no public authorised networks.

One Connector per process (it holds the certificate cache and a background event loop) and one
small pool per (instance, IAM user, role) triple; both are made on first use, and the
connector package is imported only here, so the local path never loads it (0.7 s of imports).

With automatic IAM database authentication the connector sends no password: it puts an
OAuth token, down-scoped to ``sqlservice.login``, into the ``generateEphemeralCert`` request,
and Cloud SQL binds the login to the certificate it issues.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from shared.config import Settings
from shared.errors import ConfigurationError
from shared.storage.sessions import act_as_app_role

_lock = threading.Lock()
_connector: Any = None
_engines: dict[tuple[str, str, bool], Engine] = {}


def _get_connector(cfg: Settings, credentials: Any) -> Any:
    """The process's Connector; the first caller's settings and credentials make it."""
    global _connector
    if _connector is None:
        from google.cloud.sql.connector import Connector, IPTypes  # cloud path only

        options: dict[str, Any] = {
            "refresh_strategy": "lazy",  # no background refresh: Cloud Run throttles idle CPU
            "enable_iam_auth": True,
            "ip_type": IPTypes.PRIVATE if cfg.db_private_ip else IPTypes.PUBLIC,
        }
        if cfg.sqladmin_api_endpoint:
            options["sqladmin_api_endpoint"] = cfg.sqladmin_api_endpoint
        if credentials is not None:
            # Otherwise the connector calls google.auth.default() with the Admin API scope.
            options["credentials"] = credentials
        _connector = Connector(**options)
    return _connector


def connector_engine(cfg: Settings, app_role: bool = True, credentials: Any = None) -> Engine:
    """An engine whose connections come from the connector, logged in as ``DB_IAM_USER``.

    Args:
        cfg: needs ``instance_connection_name`` (``project:region:instance``) and
            ``db_iam_user`` (the service account's email, with or without
            ``.gserviceaccount.com``); reads ``db_name``, ``db_private_ip``,
            ``db_pool_size``, ``db_statement_timeout_ms`` and ``sqladmin_api_endpoint``.
        app_role: make each connection act as the application role (the functions); the
            migration step passes False and acts as its own IAM user, an owner-role member.
        credentials: google-auth credentials for the Admin API and the IAM login; None means
            ``google.auth.default()``. Only the call that creates the process's connector
            uses them.

    Returns:
        The same Engine for the same (instance, user, app_role) for the life of the process.

    Raises:
        ConfigurationError: INSTANCE_CONNECTION_NAME or DB_IAM_USER is missing.
    """
    if not cfg.instance_connection_name or not cfg.db_iam_user:
        raise ConfigurationError("INSTANCE_CONNECTION_NAME and DB_IAM_USER must both be set")
    key = (cfg.instance_connection_name, cfg.db_iam_user, app_role)
    with _lock:
        if key in _engines:
            return _engines[key]
        connector = _get_connector(cfg, credentials)
        instance, user, db = cfg.instance_connection_name, cfg.db_iam_user, cfg.db_name

        def connect() -> Any:
            return connector.connect(instance, "pg8000", user=user, db=db, enable_iam_auth=True)

        engine = create_engine(
            "postgresql+pg8000://",
            creator=connect,
            pool_size=cfg.db_pool_size,
            max_overflow=0,
            pool_timeout=5,
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
