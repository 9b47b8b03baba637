"""The process's authenticator: local tokens, or Google's identity in the cloud."""

from __future__ import annotations

from functools import lru_cache

from shared.config import settings
from shared.security.local_tokens import LocalTokens
from shared.security.principal import Authenticator


@lru_cache(maxsize=1)
def authenticator() -> Authenticator:
    """The process-wide authenticator for the configured mode."""
    cfg = settings()
    if cfg.is_cloud:
        from shared.security.google_identity import cloud_authenticator  # cloud path only

        return cloud_authenticator(cfg)
    return LocalTokens.from_settings(cfg)
