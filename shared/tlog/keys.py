"""The signing keyring: the active Ed25519 key that signs checkpoints and certificates, and
every older key, kept so that what they signed stays verifiable after a rotation.

Stored as one JSON document (locally the env var PLANT_SIGNING_KEYS or a file under
.data/keys; in the cloud a Secret Manager secret)::

    {"name": "<key name>", "keys": [{"seed": "<base64 32-byte seed>", "created_at": "..."}]}

The last key is the active one. Rotation appends a key; no key is ever removed.

A running process re-reads the keyring when it changes (``KeyringCache``): the key file is
looked at (one ``fstat``) at most every ``key_refresh_seconds`` (1 s by default), the secret's
version read at most that often in the cloud (60 s by default), so the next seal after that
time is signed by the new key. A keyring that does not parse, or that drops a key the one in
use holds (what that key signed would stop verifying), is refused: the process keeps the last
good ring and logs the reason, never key material.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.config import Settings, settings
from shared.errors import ConfigurationError
from shared.integrity.canonical import now_text
from shared.integrity.note import NoteError, Signer, Verifier

log = logging.getLogger("plant.keys")


@dataclass(frozen=True)
class Keyring:
    signers: tuple[Signer, ...]

    @property
    def active(self) -> Signer:
        return self.signers[-1]

    @property
    def verifiers(self) -> tuple[Verifier, ...]:
        return tuple(Verifier.from_vkey(s.vkey) for s in self.signers)

    @property
    def vkeys(self) -> list[str]:
        return [s.vkey for s in self.signers]


def origin(tenant: str) -> str:
    """The origin line naming one tenant's log: in its checkpoints and write receipts."""
    return f"{settings().log_origin_prefix}/{tenant}"


def parse(document: bytes) -> Keyring:
    """Parse the keyring document; the message never includes key material."""
    try:
        data = json.loads(document)
        name = data["name"]
        seeds = [base64.b64decode(k["seed"], validate=True) for k in data["keys"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError("the signing keyring is malformed") from exc
    if not isinstance(name, str) or not name or not seeds or any(len(s) != 32 for s in seeds):
        raise ConfigurationError("the signing keyring must hold a name and 32-byte seeds")
    try:
        return Keyring(tuple(Signer.from_seed(name, seed) for seed in seeds))
    except NoteError as exc:  # a key name with a space or '+'
        raise ConfigurationError(f"the signing keyring's name is not a key name: {exc}") from exc


def new_document(name: str, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """A keyring document with one more fresh key than ``previous``."""
    keys = list(previous["keys"]) if previous else []
    keys.append({"seed": base64.b64encode(os.urandom(32)).decode(), "created_at": now_text()})
    return {"name": previous["name"] if previous else name, "keys": keys}


def key_file(cfg: Settings) -> Path:
    return cfg.signing_key_file or cfg.keys_dir / "signing-keys.json"


def write_private(path: Path, document: dict[str, Any]) -> None:
    """Replace ``path`` atomically: a reader sees the old keyring or the new, never part of
    one (a fresh temporary file in the same directory, synced, then renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:  # mkstemp made it 0600
            json.dump(document, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def ensure_local(cfg: Settings) -> Path:
    """Create the development keyring if there is none."""
    path = key_file(cfg)
    if not path.exists():
        write_private(path, new_document(cfg.log_origin_prefix))
    return path


def rotate_local(cfg: Settings) -> Keyring:
    """Append a new active key to the local keyring (old keys stay for verification).

    Rotations are serialised by a lock file beside the keyring, so two at once cannot both
    read the same ring and the second drop the key the first added."""
    path = key_file(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ensure_local(cfg)
        document = new_document(cfg.log_origin_prefix, json.loads(path.read_bytes()))
        write_private(path, document)
    reset()
    return parse(json.dumps(document).encode())


# What a source last gave: an opaque version (file identity, or the value's digest), and the
# document when it differs from the version the caller already has (None when it does not).
Read = tuple[object, bytes | None]


def _read_file(path: Path, known: object) -> Read:
    try:
        with open(path, "rb") as handle:
            st = os.fstat(handle.fileno())
            version = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            return version, None if version == known else handle.read()
    except OSError as exc:
        raise ConfigurationError(f"no signing keyring at {path} (run make run once)") from exc


def _read_secret(name: str, known: object) -> Read:
    from shared.security.secrets import secret_manager  # cloud path only

    document = secret_manager().get(name)
    version = hashlib.sha256(document).digest()
    return version, None if version == known else document


def _reader(cfg: Settings) -> tuple[Callable[[object], Read], float]:
    """How to read the keyring ``cfg`` names, and how often to look at it again."""
    if cfg.is_cloud:
        secret = cfg.signing_key_secret
        if not secret:
            raise ConfigurationError("PLANT_SIGNING_KEY_SECRET is not set")
        return (lambda known: _read_secret(secret, known)), cfg.key_refresh_seconds
    inline = os.environ.get("PLANT_SIGNING_KEYS")
    if inline:  # the environment of a running process does not change
        return (lambda known: ("inline", inline.encode())), math.inf
    path = key_file(cfg)
    return (lambda known: _read_file(path, known)), cfg.key_refresh_seconds


def load(cfg: Settings) -> Keyring:
    """Read and parse the keyring once (start-up, the CLI)."""
    read, _ = _reader(cfg)
    _, document = read(None)
    assert document is not None  # nothing is known yet, so the document is always read
    return parse(document)


@dataclass(frozen=True)
class _Held:
    ring: Keyring
    version: object
    due: float  # monotonic time after which the source is looked at again


class KeyringCache:
    """One process's keyring, re-read when its source changes.

    The hot path is a clock read and an attribute read. Once ``refresh`` seconds have passed,
    one caller looks at the source (the others go on with the ring in hand meanwhile, never
    waiting on Secret Manager); only the first load blocks, and only its failure raises.
    """

    def __init__(self, cfg: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self._read, self._refresh = _reader(cfg)
        self._clock = clock
        self._lock = threading.Lock()
        self._held: _Held | None = None
        self._refused: object = None  # a version refused once is not parsed again
        self.error: str | None = None  # why the newest keyring is not in use, if it is not

    def get(self) -> Keyring:
        held = self._held
        if held is not None and self._clock() < held.due:
            return held.ring
        if held is None:
            with self._lock:
                if self._held is None:
                    version, document = self._read(None)
                    assert document is not None
                    self._held = _Held(parse(document), version, self._clock() + self._refresh)
                return self._held.ring
        if not self._lock.acquire(blocking=False):
            return held.ring  # another thread is looking
        try:
            self._held = self._look(held)
            return self._held.ring
        finally:
            self._lock.release()

    def _look(self, held: _Held) -> _Held:
        version: object = None
        try:
            version, document = self._read(held.version)
            if document is not None and version != self._refused:
                held = _Held(_successor(held.ring, parse(document)), version, 0)
                log.info(
                    "signing keyring reloaded: %d key(s), active %s",
                    len(held.ring.signers),
                    held.ring.active.key_id_hex,
                )
            if version != self._refused:
                self.error = None
        except ConfigurationError as exc:
            self._refused = version
            if str(exc) != self.error:
                log.error("signing keyring not reloaded, the previous one stays in use: %s", exc)
            self.error = str(exc)
        return _Held(held.ring, held.version, self._clock() + self._refresh)


def _successor(current: Keyring, new: Keyring) -> Keyring:
    kept = set(new.vkeys)
    dropped = [s.key_id_hex for s in current.signers if s.vkey not in kept]
    if dropped:
        raise ConfigurationError(
            f"the new signing keyring drops key(s) {', '.join(dropped)} that the one in use "
            "holds (what they signed would stop verifying); rotation only appends keys"
        )
    return new


_lock = threading.Lock()
_cache: KeyringCache | None = None


def _process_cache() -> KeyringCache:
    global _cache
    cache = _cache
    if cache is None:
        with _lock:
            if _cache is None:
                _cache = KeyringCache(settings())
            cache = _cache
    return cache


def keyring() -> Keyring:
    """The process-wide keyring, loaded on first use and re-read when it is rotated."""
    return _process_cache().get()


def status() -> dict[str, Any]:
    """What a health check can show: the active key id and why a newer ring is not in use."""
    cache = _process_cache()
    return {"active_key_id": cache.get().active.key_id_hex, "reload_error": cache.error}


def reset() -> None:
    """Forget the process's keyring (the next use reads it again)."""
    global _cache
    with _lock:
        _cache = None
