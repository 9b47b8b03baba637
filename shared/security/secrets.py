"""Secret values from Secret Manager (the cloud path; locally, `shared.tlog.keys` reads files).

Values are cached per process for a short time (a rotation is picked up without a restart)
and never logged or put into an error message: errors name the secret, not its value.

The Google client itself can log whole responses: with ``GOOGLE_SDK_PYTHON_LOGGING_SCOPE`` set
(an operator debugging the SDK), its transports write each response payload, secret included
(base64), to stdout as structured JSON. ``SecretManagerSource`` installs a filter on those
loggers that blanks the payload fields before any handler sees them.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

from shared.config import settings
from shared.errors import ConfigurationError

RESOURCE = re.compile(
    r"^projects/[^/]+/secrets/[A-Za-z0-9_-]{1,255}/versions/(latest|[1-9][0-9]*)$"
)

# The loggers of the client's transports, and the record fields they put payloads in.
_TRANSPORT_LOGGERS = tuple(
    f"google.cloud.secretmanager_v1.services.secret_manager_service.transports.{name}"
    for name in ("grpc", "grpc_asyncio", "rest")
)
_PAYLOAD_FIELDS = ("request", "response", "httpRequest", "httpResponse")
REDACTED = "<redacted by shared.security.secrets>"


class _RedactPayloads(logging.Filter):
    """Blank the payload fields of the client's debug records (the record is kept)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in _PAYLOAD_FIELDS:
            if name in record.__dict__:
                setattr(record, name, REDACTED)
        return True


_redactor = _RedactPayloads()


def _redact_client_logs() -> None:
    for name in _TRANSPORT_LOGGERS:
        logger = logging.getLogger(name)
        if _redactor not in logger.filters:
            logger.addFilter(_redactor)


class SecretManagerSource:
    """Secret Manager through the real client (``AccessSecretVersion``), cached with a TTL.

    Args:
        client: a ``SecretManagerServiceClient`` (tests pass one on an insecure channel to a
            local fake); made on first use with the default credentials when None.
        ttl_seconds: how long a value is served from the cache before it is read again.
    """

    def __init__(self, client: Any | None = None, ttl_seconds: float = 60) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, bytes]] = {}
        self._lock = threading.Lock()
        _redact_client_logs()

    def __repr__(self) -> str:
        return f"SecretManagerSource(ttl_seconds={self._ttl}, cached={len(self._cache)})"

    def _service(self) -> Any:
        with self._lock:
            if self._client is None:
                from google.cloud import secretmanager  # cloud path only

                self._client = secretmanager.SecretManagerServiceClient()
            return self._client

    def get(self, name: str) -> bytes:
        """The payload of secret version ``name`` (``projects/P/secrets/S/versions/V``).

        Raises:
            ConfigurationError: the name is malformed, the version does not exist, this
                service account may not read it, or Secret Manager cannot be reached. The
                message names the resource, never the value.
        """
        if not isinstance(name, str) or not RESOURCE.match(name):
            raise ConfigurationError(
                f"secret {name!r} is not of the form projects/P/secrets/S/versions/V"
            )
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(name)
            if cached and now - cached[0] < self._ttl:
                return cached[1]
        value = self._access(name)
        with self._lock:
            self._cache[name] = (now, value)
        return value

    def _access(self, name: str) -> bytes:
        from google.api_core import exceptions  # cloud path only

        try:
            response = self._service().access_secret_version(request={"name": name}, timeout=10)
        except exceptions.NotFound as exc:
            raise ConfigurationError(f"secret {name} does not exist") from exc
        except exceptions.PermissionDenied as exc:
            raise ConfigurationError(
                f"this service account may not read secret {name} "
                "(grant it roles/secretmanager.secretAccessor)"
            ) from exc
        except exceptions.GoogleAPICallError as exc:
            raise ConfigurationError(f"secret {name} could not be read: {exc.code}") from exc
        except exceptions.RetryError as exc:
            raise ConfigurationError(f"secret {name} could not be read: timed out") from exc
        value = bytes(response.payload.data)
        if "data_crc32c" in response.payload:  # Secret Manager always sends it
            import google_crc32c  # pinned with the Secret Manager client

            if google_crc32c.value(value) != response.payload.data_crc32c:
                raise ConfigurationError(f"secret {name} arrived corrupted (CRC32C mismatch)")
        return value


_shared_lock = threading.Lock()
_shared: SecretManagerSource | None = None


def secret_manager() -> SecretManagerSource:
    """The process-wide Secret Manager source (one client, one cache), its values as fresh as
    the keyring's refresh interval (``key_refresh_seconds``): a rotation is read that soon."""
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                _shared = SecretManagerSource(ttl_seconds=settings().key_refresh_seconds)
    return _shared
