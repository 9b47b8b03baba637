"""The signing keyring: the active Ed25519 key that signs checkpoints and certificates, and
every older key, kept so that what they signed stays verifiable after a rotation.

Stored as one JSON document (locally the env var PLANT_SIGNING_KEYS or a file under
.data/keys; in the cloud a Secret Manager secret)::

    {"name": "<key name>", "keys": [{"seed": "<base64 32-byte seed>", "created_at": "..."}]}

The last key is the active one. Rotation appends a key; no key is ever removed.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.config import Settings, settings
from shared.documents import now_text
from shared.errors import ConfigurationError
from shared.integrity.note import Signer, Verifier


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
    return Keyring(tuple(Signer.from_seed(name, seed) for seed in seeds))


def new_document(name: str, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """A keyring document with one more fresh key than ``previous``."""
    keys = list(previous["keys"]) if previous else []
    keys.append({"seed": base64.b64encode(os.urandom(32)).decode(), "created_at": now_text()})
    return {"name": previous["name"] if previous else name, "keys": keys}


def key_file(cfg: Settings) -> Path:
    return cfg.signing_key_file or cfg.keys_dir / "signing-keys.json"


def _write_private(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle)
    tmp.replace(path)


def ensure_local(cfg: Settings) -> Path:
    """Create the development keyring if there is none."""
    path = key_file(cfg)
    if not path.exists():
        _write_private(path, new_document(cfg.log_origin_prefix))
    return path


def rotate_local(cfg: Settings) -> Keyring:
    """Append a new active key to the local keyring (old keys stay for verification)."""
    path = ensure_local(cfg)
    document = new_document(cfg.log_origin_prefix, json.loads(path.read_bytes()))
    _write_private(path, document)
    reset()
    return parse(json.dumps(document).encode())


def load(cfg: Settings) -> Keyring:
    if cfg.is_cloud:
        if not cfg.signing_key_secret:
            raise ConfigurationError("PLANT_SIGNING_KEY_SECRET is not set")
        from shared.secrets import secret_manager  # cloud path only

        return parse(secret_manager().get(cfg.signing_key_secret))
    inline = os.environ.get("PLANT_SIGNING_KEYS")
    if inline:
        return parse(inline.encode())
    path = key_file(cfg)
    try:
        return parse(path.read_bytes())
    except OSError as exc:
        raise ConfigurationError(f"no signing keyring at {path} (run make run once)") from exc


_lock = threading.Lock()
_keyring: Keyring | None = None


def keyring() -> Keyring:
    """The process-wide keyring, loaded on first use."""
    global _keyring
    if _keyring is None:
        with _lock:
            if _keyring is None:
                _keyring = load(settings())
    return _keyring


def reset() -> None:
    global _keyring
    with _lock:
        _keyring = None
