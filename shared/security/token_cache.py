"""Tokens already verified, so a caller's next request with the same token skips the
signature check (an Ed25519 verification and PyJWT's parsing, about 0.25 ms a request).

A signed token's bytes fix every claim, so what a full verification decided about a token
holds for those exact bytes, except for its time claims. An entry is keyed by the SHA-256 of
the exact token (a token with any byte changed is another key, and so is fully verified), and
keeps the principal with the interval of instants at which the verifier's time checks pass;
it is used only inside that interval. Outside it the token is verified again from scratch,
which gives the exact error (expired, not yet valid). Only successful verifications are
kept, at most ``size`` of them, oldest dropped first.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

from shared.security.principal import Principal


@dataclass(frozen=True)
class Verified:
    """A verified token's principal; its verifier's time checks pass exactly while
    ``valid_from <= time.time() < valid_until``."""

    principal: Principal
    valid_from: float
    valid_until: float


class TokenCache:
    """Verified tokens by the SHA-256 of their bytes (bounded, thread-safe)."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._entries: dict[bytes, Verified] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(token: str) -> bytes:
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

    def get(self, key: bytes) -> Principal | None:
        """The principal of a kept token whose time claims hold now, else None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.valid_from <= time.time() < entry.valid_until:
            return entry.principal
        with self._lock:
            self._entries.pop(key, None)
        return None

    def put(self, key: bytes, entry: Verified) -> None:
        with self._lock:
            self._entries.pop(key, None)
            while len(self._entries) >= self._size:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = entry
