"""One settings object, read from the environment once per process.

The local mode (embedded or developer PostgreSQL, locally signed tokens, keys in files) is the
default; the cloud mode is switched on explicitly with ``PLANT_ENV=cloud`` and then refuses to run
with the local-only shortcuts, so a development setting cannot leak into a deployment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from shared.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[1]

APP_ROLE = "plant_app"


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be an integer") from exc


def _seconds(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be a number of seconds") from exc
    if not 0 <= value <= 3600:
        raise ConfigurationError(f"{name} must be from 0 to 3600 seconds")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the functions read from their environment.

    Cloud variables (see terraform/): INSTANCE_CONNECTION_NAME, DB_NAME, DB_IAM_USER,
    DB_PRIVATE_IP, PLANT_SIGNING_KEY_SECRET, PLANT_IDENTITY_MAP, PLANT_TRUST_PLATFORM_IDENTITY,
    PLANT_TOKEN_AUDIENCE, PLANT_ANCHOR_BUCKET, PLANT_MIRROR_BUCKET, PLANT_KEY_REFRESH_SECONDS,
    PLANT_WITNESSES or PLANT_WITNESSES_SECRET, PLANT_WITNESS_TIMEOUT_SECONDS; a witness:
    PLANT_WITNESS_KEY_SECRET (or PLANT_WITNESS_KEY_FILE locally) and PLANT_WITNESS_LOGS (and
    PLANT_SQLADMIN_API_ENDPOINT for tests).
    """

    env: str = "local"
    data_dir: Path = ROOT / ".data"
    database_url: str | None = None
    # Cloud SQL through the Python Connector (used when instance_connection_name is set).
    instance_connection_name: str | None = None
    db_name: str = "plant"
    db_iam_user: str | None = None
    db_private_ip: bool = False
    db_pool_size: int = 8
    db_statement_timeout_ms: int = 15000
    # Bulk creates running at once per process (each tenant one at a time; see admission).
    max_batches: int = 1
    # A full audit's entries pass: processes that scan its ranges side by side (1: in the
    # request's own process), from this many entries up (fewer do not repay the start-up).
    audit_workers: int = 2
    audit_parallel_from: int = 262144
    # Exports: at most this many at once in a process (more get 503 + Retry-After), and a PDF
    # of at most this many entities plus findings (more get 422: CSV, JSON or a bundle then).
    export_concurrency: int = 2
    export_pdf_max_entities: int = 5000
    # The Cloud SQL Admin API the connector asks for certificates (tests point it at a fake).
    sqladmin_api_endpoint: str | None = None
    # Identity.
    token_issuer: str = "plant-local"  # noqa: S105 (a name, not a secret)
    token_audience: str = "plant-registry"  # noqa: S105
    jwt_key_file: Path | None = None
    identity_map: str | None = None
    trust_platform_identity: bool = False
    # Keys and anchors.
    signing_key_file: Path | None = None
    signing_key_secret: str | None = None
    report_signing_secret: str | None = None  # the PDF/DSSE report key (evidence/report_signing)
    anchor_dir: Path | None = None
    anchor_bucket: str | None = None
    log_origin_prefix: str = "plant-registry.local/log"
    # The static tile mirror (C2SP tlog-tiles): its own bucket in the cloud (its checkpoint
    # object is replaced at each seal, which the anchor bucket's retention forbids); locally
    # the anchor directory, under <tenant>/tiles/.
    mirror_bucket: str | None = None
    # The log's witnesses (shared/tlog/witnesses.py): JSON {"<tenant> or *": [{"name",
    # "vkey", "url"}]} inline or in a Secret Manager secret, and each witness's time bound.
    witnesses: str | None = None
    witnesses_secret: str | None = None
    witness_timeout_seconds: float = 3.0
    # A witness of our own (functions/witness.py): its key ({"name", "seed"}) and the logs it
    # witnesses (JSON {"<origin>": ["<log vkey>", ...]}).
    witness_key_file: Path | None = None
    witness_key_secret: str | None = None
    witness_logs: str | None = None
    # How stale the signing keyring may be: a running server looks for a rotated keyring this
    # often (locally a stat() of the key file, in the cloud a read of the secret's version).
    key_refresh_seconds: float = 1.0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def is_cloud(self) -> bool:
        return self.env == "cloud"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"


def load(environ: dict[str, str] | None = None) -> Settings:
    """Build Settings from an environment mapping (``os.environ`` by default)."""
    env = dict(os.environ if environ is None else environ)
    mode = env.get("PLANT_ENV", "local").strip().lower() or "local"
    if mode not in {"local", "cloud"}:
        raise ConfigurationError("PLANT_ENV must be 'local' or 'cloud'")
    data_dir = Path(env.get("PLANT_DATA_DIR") or ROOT / ".data")
    settings = Settings(
        env=mode,
        data_dir=data_dir,
        database_url=env.get("DATABASE_URL") or None,
        instance_connection_name=env.get("INSTANCE_CONNECTION_NAME") or None,
        db_name=env.get("DB_NAME") or "plant",
        db_iam_user=env.get("DB_IAM_USER") or None,
        db_private_ip=_flag(env.get("DB_PRIVATE_IP")),
        db_pool_size=_int(env, "PLANT_DB_POOL_SIZE", 8),
        db_statement_timeout_ms=_int(env, "PLANT_DB_STATEMENT_TIMEOUT_MS", 15000),
        max_batches=_int(env, "PLANT_MAX_BATCHES", 1),
        audit_workers=_int(env, "PLANT_AUDIT_WORKERS", 2),
        audit_parallel_from=_int(env, "PLANT_AUDIT_PARALLEL_FROM", 262144),
        export_concurrency=_int(env, "PLANT_EXPORT_CONCURRENCY", 2),
        export_pdf_max_entities=_int(env, "PLANT_EXPORT_PDF_MAX_ENTITIES", 5000),
        sqladmin_api_endpoint=env.get("PLANT_SQLADMIN_API_ENDPOINT") or None,
        token_issuer=env.get("PLANT_TOKEN_ISSUER") or "plant-local",
        token_audience=env.get("PLANT_TOKEN_AUDIENCE") or "plant-registry",
        jwt_key_file=Path(env["PLANT_JWT_KEY_FILE"]) if env.get("PLANT_JWT_KEY_FILE") else None,
        identity_map=env.get("PLANT_IDENTITY_MAP") or None,
        trust_platform_identity=_flag(env.get("PLANT_TRUST_PLATFORM_IDENTITY")),
        signing_key_file=(
            Path(env["PLANT_SIGNING_KEY_FILE"]) if env.get("PLANT_SIGNING_KEY_FILE") else None
        ),
        signing_key_secret=env.get("PLANT_SIGNING_KEY_SECRET") or None,
        report_signing_secret=env.get("PLANT_REPORT_SIGNING_SECRET") or None,
        anchor_dir=Path(env["PLANT_ANCHOR_DIR"]) if env.get("PLANT_ANCHOR_DIR") else None,
        anchor_bucket=env.get("PLANT_ANCHOR_BUCKET") or None,
        log_origin_prefix=env.get("PLANT_LOG_ORIGIN_PREFIX") or "plant-registry.local/log",
        mirror_bucket=env.get("PLANT_MIRROR_BUCKET") or None,
        witnesses=env.get("PLANT_WITNESSES") or None,
        witnesses_secret=env.get("PLANT_WITNESSES_SECRET") or None,
        witness_timeout_seconds=_seconds(env, "PLANT_WITNESS_TIMEOUT_SECONDS", 3.0),
        witness_key_file=(
            Path(env["PLANT_WITNESS_KEY_FILE"]) if env.get("PLANT_WITNESS_KEY_FILE") else None
        ),
        witness_key_secret=env.get("PLANT_WITNESS_KEY_SECRET") or None,
        witness_logs=env.get("PLANT_WITNESS_LOGS") or None,
        key_refresh_seconds=_seconds(
            env, "PLANT_KEY_REFRESH_SECONDS", 60.0 if mode == "cloud" else 1.0
        ),
    )
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    if settings.audit_workers < 1:
        raise ConfigurationError("PLANT_AUDIT_WORKERS must be at least 1")
    if settings.max_batches < 1:
        raise ConfigurationError("PLANT_MAX_BATCHES must be at least 1")
    if settings.export_concurrency < 1:
        raise ConfigurationError("PLANT_EXPORT_CONCURRENCY must be at least 1")
    if settings.export_pdf_max_entities < 0:
        raise ConfigurationError("PLANT_EXPORT_PDF_MAX_ENTITIES must not be negative")
    if settings.is_cloud:
        if not (settings.instance_connection_name or settings.database_url):
            raise ConfigurationError("cloud mode needs INSTANCE_CONNECTION_NAME or DATABASE_URL")
        if settings.jwt_key_file is not None:
            raise ConfigurationError(
                "PLANT_JWT_KEY_FILE (local tokens) is not allowed in cloud mode"
            )
        if settings.signing_key_file is not None:
            raise ConfigurationError("cloud mode reads the signing key from Secret Manager")
    elif settings.trust_platform_identity:
        raise ConfigurationError("PLANT_TRUST_PLATFORM_IDENTITY is only valid with PLANT_ENV=cloud")


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process-wide settings (read once)."""
    return load()
