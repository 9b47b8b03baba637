"""Local bootstrap shared by `make run`, `make test` and the test fixtures."""

from __future__ import annotations

from shared.config import settings
from shared.evidence import report_signing
from shared.security.local_tokens import ensure_jwt_key
from shared.storage import migrate
from shared.tlog import keys


def prepare_local() -> None:
    """Migrate the database and create development keys that do not exist yet."""
    cfg = settings()
    if cfg.is_cloud:
        raise RuntimeError("prepare_local is for local mode only")
    migrate.upgrade()
    ensure_jwt_key(cfg)
    keys.ensure_local(cfg)
    report_signing.ensure_local(cfg)
