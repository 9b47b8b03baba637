"""Who is calling: ``principal`` (principals, roles), ``authenticators`` (the process's
authenticator, which the web router calls), ``local_tokens`` (the local token scheme that
``plant token`` issues), ``google_identity`` (Google's in the cloud), ``token_cache`` and
``secrets`` (Secret Manager). Nothing is imported here."""

__all__ = ["authenticators", "local_tokens", "principal", "secrets"]
