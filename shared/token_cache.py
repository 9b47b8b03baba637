"""Tokens already verified, so a caller's next request with the same token skips the
signature check (an Ed25519 verification and PyJWT's parsing, about 0.25 ms a request).

A signed token's bytes fix every claim, so what a full verification decided about a token
holds for those exact bytes, except for its time claims. An entry is keyed by the SHA-256 of
the exact token (a token with any byte changed is another key, and so is fully verified), and
keeps the principal with the token's time claims; it is used only while those claims still
pass the checks the verifier applies, re-run on every use. Outside them the token is verified
again from scratch, which gives the exact error (expired, not yet valid). Only successful
verifications are kept, at most ``size`` of them, oldest dropped first.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.auth import Principal


@dataclass(frozen=True)
class Verified:
    """A verified token's principal and the time claims (seconds) it must still satisfy:
    valid while ``not_before <= now + leeway`` and ``expires > now - leeway``."""

    principal: Principal
    not_before: int
    expires: int


class TokenCache:
    """Verified tokens by the SHA-256 of their bytes (bounded, thread-safe)."""

    def __init__(self, leeway: float, size: int = 4096) -> None:
        self.leeway = leeway
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
        now = time.time()
        # The verifier's own comparisons (PyJWT: iat/nbf > now + leeway is "not yet valid",
        # exp <= now - leeway is "expired"), so a kept token passes exactly when it would.
        if entry.not_before > now + self.leeway or entry.expires <= now - self.leeway:
            with self._lock:
                self._entries.pop(key, None)
            return None
        return entry.principal

    def put(self, key: bytes, entry: Verified) -> None:
        with self._lock:
            self._entries.pop(key, None)
            while len(self._entries) >= self._size:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = entry
