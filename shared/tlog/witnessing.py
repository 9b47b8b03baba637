"""A witness of our own (C2SP tlog-witness v1.0.0 ``add-checkpoint``), served by
``functions/witness.py``: it cosigns a log's checkpoint only if the log's key signed it and it
is proven consistent with the one it cosigned before, so no log can show two histories.

Its key (PLANT_WITNESS_KEY_SECRET in the cloud, PLANT_WITNESS_KEY_FILE locally, made under
the data directory on first use): JSON ``{"name": ..., "seed": <base64 32 bytes>}``. The logs
it witnesses (PLANT_WITNESS_LOGS): JSON ``{"<origin>": ["<log vkey>", ...]}``. Its state is one
row per origin (``witness_checkpoints``, no tenant): read ``FOR UPDATE`` and compared-and-set
in the transaction that decides, so two racing requests can never roll it back.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from shared.config import Settings, settings
from shared.errors import (
    ConfigurationError,
    Forbidden,
    MalformedRequest,
    NotFound,
    PayloadTooLarge,
    PlantError,
    ValidationFailed,
)
from shared.integrity.cosignature import MalformedCosignature, WitnessSigner
from shared.integrity.note import NoteError, Verifier
from shared.integrity.witness_protocol import (
    COSIGNATURE_CONTENT_TYPE,
    MAX_BODY_BYTES,
    SIZE_CONTENT_TYPE,
    StoredCheckpoint,
    WitnessProtocolError,
    cosign_response,
    decide,
    format_size_body,
    parse_add_checkpoint,
)
from shared.storage import cosignatures
from shared.storage.engine import database

log = logging.getLogger("plant.witness")
SCOPE = "-witness"  # the transaction's plant.tenant: no tenant's rows are visible to it


def key_file(cfg: Settings) -> str:
    return str(cfg.witness_key_file or cfg.keys_dir / "witness-key.json")


def _key_document(cfg: Settings) -> bytes:
    if cfg.is_cloud:
        if not cfg.witness_key_secret:
            raise ConfigurationError("PLANT_WITNESS_KEY_SECRET is not set")
        from shared.security.secrets import secret_manager  # cloud path only

        return secret_manager().get(cfg.witness_key_secret)
    path = key_file(cfg)
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        document = {"name": "plant-witness", "seed": base64.b64encode(os.urandom(32)).decode()}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle)
    with open(path, "rb") as handle:
        return handle.read()


@lru_cache(maxsize=1)
def signer() -> WitnessSigner:
    """The witness's key (messages name the setting, never key material)."""
    try:
        data = json.loads(_key_document(settings()))
        return WitnessSigner.from_seed(data["name"], base64.b64decode(data["seed"], validate=True))
    except (ValueError, KeyError, TypeError, MalformedCosignature) as exc:
        raise ConfigurationError("the witness key is malformed") from exc


@lru_cache(maxsize=1)
def trusted() -> dict[str, tuple[Verifier, ...]]:
    """Origin -> the log keys trusted for it."""
    raw = settings().witness_logs
    if not raw:
        return {}
    try:
        return {
            origin: tuple(Verifier.from_vkey(v) for v in vkeys)
            for origin, vkeys in json.loads(raw).items()
        }
    except (ValueError, TypeError, AttributeError, NoteError) as exc:
        raise ConfigurationError("PLANT_WITNESS_LOGS is malformed") from exc


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str


_REFUSALS: dict[int, Callable[[str], PlantError]] = {
    400: MalformedRequest,
    403: Forbidden,
    404: NotFound,
    413: lambda why: PayloadTooLarge(why, limit=MAX_BODY_BYTES),
    422: lambda why: ValidationFailed(
        why, [{"rule": "tlog-witness", "field": "checkpoint", "message": why}]
    ),
}


def _refuse(status: int, reason: str) -> PlantError:
    """A refusal as problem+json (C2SP fixes only the status; the 409 keeps its own body)."""
    return _REFUSALS[status](reason)


def add_checkpoint(body: bytes) -> Answer:
    """Decide and, on 200, persist the new (size, root) and cosign, in one transaction; a
    409 answers the size held; other refusals raise (400, 403, 404, 413, 422)."""
    if len(body) > MAX_BODY_BYTES:
        raise _refuse(413, f"the body exceeds {MAX_BODY_BYTES} bytes")
    try:
        request = parse_add_checkpoint(body)
    except WitnessProtocolError as exc:
        raise _refuse(400, str(exc)) from exc
    witness = signer()
    with database().transaction(SCOPE) as conn:
        held = cosignatures.lock_origin(conn, request.origin)
        stored = StoredCheckpoint(held.size, held.root) if held else None
        decision = decide(request, trusted(), stored)
        if decision.split_view:
            log.error(
                "split view refused for %s: %s; the log-signed note: %r",
                request.origin,
                decision.reason,
                request.note,
            )
        if decision.status == 409:
            return Answer(409, format_size_body(decision.stored_size or 0), SIZE_CONTENT_TYPE)
        if decision.status != 200 or decision.persist is None:
            raise _refuse(decision.status, decision.reason)
        new = decision.persist
        if not cosignatures.store_origin(
            conn, request.origin, held.size if held else None, new.size, new.root, request.note
        ):  # a first insert raced by another one (no row to lock yet): it holds a size now
            now = cosignatures.lock_origin(conn, request.origin)
            return Answer(409, format_size_body(now.size if now else 0), SIZE_CONTENT_TYPE)
        line = cosign_response(request, [witness], int(time.time()))
    return Answer(200, line, COSIGNATURE_CONTENT_TYPE)
