"""Secret values: from Secret Manager in the cloud, from files locally.

Values are cached per process for a short time (a rotation is picked up without a restart)
and never logged or put into an error message: errors name the secret, not its value.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from shared.errors import ConfigurationError

RESOURCE = re.compile(
    r"^projects/[^/]+/secrets/[A-Za-z0-9_-]{1,255}/versions/(latest|[1-9][0-9]*)$"
)


class SecretSource(Protocol):
    def get(self, name: str) -> bytes: ...


class FileSource:
    """Secrets as files in a directory (local development)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def get(self, name: str) -> bytes:
        path = self.directory / name
        if path.parent != self.directory:
            raise ConfigurationError(f"secret name {name!r} is not a plain file name")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"secret {name!r} is missing from {self.directory}") from exc


class SecretManagerSource:
    """Secret Manager through the real client (``AccessSecretVersion``), cached with a TTL."""

    def __init__(self, client: Any | None = None, ttl_seconds: float = 300) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, bytes]] = {}
        self._lock = threading.Lock()

    def _service(self) -> Any:
        if self._client is None:
            from google.cloud import secretmanager  # cloud path only

            self._client = secretmanager.SecretManagerServiceClient()
        return self._client

    def get(self, name: str) -> bytes:
        if not RESOURCE.match(name):
            raise ConfigurationError(
                f"secret {name!r} is not of the form projects/P/secrets/S/versions/V"
            )
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(name)
            if cached and now - cached[0] < self._ttl:
                return cached[1]
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
        value = bytes(response.payload.data)
        with self._lock:
            self._cache[name] = (now, value)
        return value


_shared: SecretManagerSource | None = None


def secret_manager() -> SecretManagerSource:
    """The process-wide Secret Manager source (one client, one cache)."""
    global _shared
    if _shared is None:
        _shared = SecretManagerSource()
    return _shared
