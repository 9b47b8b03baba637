"""The seal's witness client (C2SP tlog-witness v1.0.0): each configured witness of the tenant
gets the new checkpoint by ``POST <url>/add-checkpoint`` with the consistency proof from the
size it last cosigned; its cosignature/v1 lines are verified and stored beside the checkpoint.

Configuration (PLANT_WITNESSES, or the Secret Manager secret PLANT_WITNESSES_SECRET in the
cloud): JSON ``{"<tenant> or *": [{"name": ..., "vkey": ..., "url": ...}]}``.

A witness down, slow or refusing never fails a seal, nor delays it past
PLANT_WITNESS_TIMEOUT_SECONDS: all witnesses are asked in parallel, each request's connect
and reads are bounded by what is left of that time, and the seal returns when it is up
(a late answer is still verified and stored). Every seal asks the witnesses that have not yet
cosigned the latest checkpoint, so a missing cosignature is retried at the next one; the last
outcome per witness is kept for ``healthz?details=1``.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from shared.config import settings
from shared.errors import ConfigurationError
from shared.integrity import merkle
from shared.integrity.cosignature import CosignatureError, WitnessKey
from shared.integrity.witness_protocol import (
    SIZE_CONTENT_TYPE,
    WitnessProtocolError,
    WitnessReply,
    format_add_checkpoint,
    read_reply,
)
from shared.storage import cosignatures, tree
from shared.storage.engine import database

log = logging.getLogger("plant.witnesses")
MAX_REPLY_BYTES = 64 * 1024  # a cosignature line is ~120 bytes: nothing honest is longer


@dataclass(frozen=True)
class Witness:
    name: str
    key: WitnessKey
    url: str  # the witness's prefix: requests go to <url>/add-checkpoint


@lru_cache(maxsize=4)
def _parse(document: str) -> dict[str, tuple[Witness, ...]]:
    try:
        data = json.loads(document)
        out = {}
        for tenant, entries in data.items():
            found = []
            for item in entries:
                key = WitnessKey.from_vkey(item["vkey"])
                if key.name != item["name"] or not item["url"].startswith(("http://", "https://")):
                    raise ValueError("a witness's name is its vkey's, its url http(s)")
                found.append(Witness(item["name"], key, item["url"].rstrip("/")))
            out[tenant] = tuple(found)
        return out
    except (ValueError, KeyError, TypeError, AttributeError, CosignatureError) as exc:
        raise ConfigurationError(f"the witness configuration is malformed: {exc}") from exc


def configured(tenant: str) -> tuple[Witness, ...]:
    """The tenant's witnesses (its own entry, else the ``*`` entry, else none)."""
    cfg = settings()
    document = cfg.witnesses
    if cfg.witnesses_secret:
        from shared.security.secrets import secret_manager  # cloud path only

        document = secret_manager().get(cfg.witnesses_secret).decode()
    if not document:
        return ()
    table = _parse(document)
    return table.get(tenant, table.get("*", ()))


# Last outcome per (tenant, witness): what health details show.
_STATUS: dict[tuple[str, str], dict[str, Any]] = {}
_STATUS_LOCK = threading.Lock()


def _note_outcome(tenant: str, name: str, size: int, error: str | None) -> None:
    with _STATUS_LOCK:
        _STATUS[(tenant, name)] = {"size": size, "error": error, "at": int(time.time())}


def last_outcome(tenant: str, name: str) -> dict[str, Any] | None:
    with _STATUS_LOCK:
        return _STATUS.get((tenant, name))


def _post(url: str, body: bytes, deadline: float) -> tuple[int, str, bytes]:
    """One POST whose connect and every read are bounded by what is left until ``deadline``."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("no time left")
    parts = urllib.parse.urlsplit(url + "/add-checkpoint")
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = kind(parts.netloc, timeout=left)
    try:
        conn.request("POST", parts.path, body, {"Content-Type": "text/plain"})
        response = conn.getresponse()
        data = response.read(MAX_REPLY_BYTES + 1)
        if len(data) > MAX_REPLY_BYTES:
            raise WitnessProtocolError("the witness's answer is too long")
        return response.status, response.getheader("Content-Type", ""), data
    finally:
        conn.close()


def _proof(tenant: str, old: int, new: int) -> list[bytes]:
    if old == 0 or old == new:
        return []
    with database().transaction(tenant, snapshot=True) as conn:
        return merkle.consistency_proof(tree.DbNodes(conn), old, new)


def _ask(tenant: str, witness: Witness, last: tree.StoredCheckpoint, old: int) -> WitnessReply:
    deadline = time.monotonic() + settings().witness_timeout_seconds
    reply = WitnessReply(0, error="not asked")
    for _attempt in range(2):  # a 409 is answered once, with the proof from the size it holds
        if old > last.size:
            return WitnessReply(
                409,
                witness_size=old,
                error=f"the witness holds size {old}, beyond this checkpoint's {last.size}: "
                "the log was rolled back or forked",
            )
        body = format_add_checkpoint(old, _proof(tenant, old, last.size), last.note)
        status, content_type, data = _post(witness.url, body, deadline)
        reply = read_reply(status, content_type, data, last.note, witness.key)
        if status != 409 or reply.witness_size is None or reply.witness_size == old:
            return reply
        old = reply.witness_size
    return reply


def _one(tenant: str, witness: Witness, last: tree.StoredCheckpoint, old: int) -> None:
    try:
        reply = _ask(tenant, witness, last, old)
    except (OSError, http.client.HTTPException, WitnessProtocolError) as exc:
        _note_outcome(tenant, witness.name, last.size, f"unreachable or slow: {exc!r}"[:300])
        return
    if reply.cosignatures:
        with database().transaction(tenant) as conn:
            cosignatures.insert(conn, last.size, witness.name, reply.cosignatures[0])
        _note_outcome(tenant, witness.name, last.size, None)
        return
    why = reply.error or f"HTTP {reply.status}"
    if reply.status == 409 and reply.witness_size is not None:
        why = f"409 ({SIZE_CONTENT_TYPE} {reply.witness_size}): {why}"
    log.warning("witness %s refused %s@%d: %s", witness.name, tenant, last.size, why)
    _note_outcome(tenant, witness.name, last.size, f"HTTP {reply.status}: {why}"[:300])


def collect(tenant: str) -> None:
    """Ask every witness that has not cosigned the latest checkpoint, in parallel, and wait
    at most the configured bound. Never raises: a seal does not depend on its witnesses."""
    witnesses = configured(tenant)
    if not witnesses:
        return
    with database().transaction(tenant) as conn:
        last = tree.latest_checkpoint(conn)
        if last is None:
            return
        have = {line.split(" ")[1] for line in cosignatures.lines_at(conn, last.size)}
        held = cosignatures.cosigned_sizes(conn)
    todo = [w for w in witnesses if w.name not in have]
    if not todo:
        return
    pool = ThreadPoolExecutor(len(todo), thread_name_prefix="witness")
    futures = [pool.submit(_one, tenant, w, last, held.get(w.name, 0)) for w in todo]
    wait(futures, timeout=settings().witness_timeout_seconds)
    pool.shutdown(wait=False)
    for witness, future in zip(todo, futures, strict=True):
        if not future.done():
            _note_outcome(tenant, witness.name, last.size, "no answer within the time bound")


def health(tenant: str) -> list[dict[str, Any]]:
    """Per configured witness: the largest size it cosigned, whether the latest checkpoint
    carries its cosignature, and the last outcome seen by this process."""
    witnesses = configured(tenant)
    if not witnesses:
        return []
    with database().transaction(tenant, snapshot=True) as conn:
        last = tree.latest_checkpoint(conn)
        held = cosignatures.cosigned_sizes(conn)
    out = []
    for w in witnesses:
        outcome = last_outcome(tenant, w.name)
        out.append(
            {
                "name": w.name,
                "url": w.url,
                "cosigned_size": held.get(w.name),
                "latest_cosigned": last is not None and held.get(w.name) == last.size,
                "last_error": outcome["error"] if outcome else None,
            }
        )
    return out
