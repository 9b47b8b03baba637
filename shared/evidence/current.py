"""Offline verification of a current-version proof (``plant verify-current``; issue 24).

A proof (``GET /registry/{kind}/{id}/proof/current``, format ``plant-current-proof/1``,
docs/formats.md) holds, step by step, when: its shape is exact (``shape``); its checkpoint
is signed by a pinned key (``checkpoint``) and is its tenant's log (``tenant``); the entry at
index size - 1 is a ``map_commit`` for exactly size - 1 entries, included under the
checkpoint's root (``map_commit``); the commit is no older than ``max_age`` (``max_age``);
the map proof leads from the entity's key and head value (or its absence) to the commit's
map root (``map_proof``); the head decodes and names this entity and kind, below the commit
(``head``); the current version's entry hashes to the head's leaf hash and is included at
the head's index (``version``); the certificate, exactly when the head names one, is
included at its index and is a certificate of this entity (``certificate``); and the
expectations hold (``expected status``, ``expected version``). The first failing step is
named; no step after it is claimed. Imports nothing that talks to a database or a network.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.integrity import heads_map, merkle, note, sparse_merkle

FORMAT = "plant-current-proof/1"
MEMBERS = {"format", "tenant", "kind", "entity_id", "checkpoint", "map_commit", "map_proof"}
MEMBERS |= {"head", "version", "certificate"}
_ENTRY = {"index", "entry", "proof"}


class StepFailed(ValueError):
    """The named step of the verification does not hold."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
        self.message = message


@dataclass(frozen=True)
class Verified:
    """What a proof that holds shows: the entity's head at the checkpoint (None: absent)."""

    tenant: str
    entity_id: uuid.UUID
    checkpoint_size: int
    commit: heads_map.MapCommit
    head: heads_map.Head | None


@dataclass(frozen=True)
class _Entry:
    index: int
    body: bytes
    proof: list[bytes]


def _b64(value: Any, where: str, size: int | None = None) -> bytes:
    try:
        if type(value) is not str:
            raise ValueError
        raw = base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise StepFailed("shape", f"{where} is not base64") from None
    if size is not None and len(raw) != size:
        raise StepFailed("shape", f"{where} is not {size} bytes")
    return raw


def _entry(doc: Any, where: str) -> _Entry:
    if type(doc) is not dict or set(doc) != _ENTRY:
        raise StepFailed("shape", f'{where} has exactly "index", "entry" and "proof"')
    index, proof = doc["index"], doc["proof"]
    if type(index) is not int or index < 0 or type(proof) is not list or len(proof) > 64:
        raise StepFailed("shape", f"{where}.index is a count and proof a list of hashes")
    hashes = [_b64(h, f"{where}.proof", 32) for h in proof]
    return _Entry(index, _b64(doc["entry"], f"{where}.entry"), hashes)


def _included(step: str, entry: _Entry, size: int, root: bytes) -> None:
    leaf = merkle.leaf_hash(entry.body)
    if not merkle.verify_inclusion(leaf, entry.index, size, entry.proof, root):
        raise StepFailed(step, f"entry {entry.index} is not included under the checkpoint")


def check(
    raw: bytes | dict[str, Any],
    vkeys: Iterable[str | note.Verifier],
    *,
    expect_status: str | None = None,
    expect_version: int | None = None,
    max_age: int | None = None,
    now: datetime | None = None,
) -> Verified:
    """Verify a proof document (bytes or parsed); raises StepFailed naming the first step
    that does not hold."""
    try:
        doc = json.loads(raw) if isinstance(raw, bytes | str) else raw
    except ValueError:
        raise StepFailed("shape", "the proof is not JSON") from None
    if type(doc) is not dict or set(doc) != MEMBERS or doc["format"] != FORMAT:
        raise StepFailed("shape", f"not a {FORMAT} document with exactly its members")
    for name in ("tenant", "kind", "entity_id", "checkpoint"):
        if type(doc[name]) is not str:
            raise StepFailed("shape", f"{name} is not a string")
    try:
        entity_id = uuid.UUID(doc["entity_id"])
        verifiers = [
            v if isinstance(v, note.Verifier) else note.Verifier.from_vkey(v) for v in vkeys
        ]
    except ValueError as exc:
        raise StepFailed("shape", f"entity_id or a pinned key is malformed ({exc})") from None
    if not verifiers:
        raise StepFailed("checkpoint", "no key is pinned (--key VKEY)")
    try:
        body, _ = note.open_note(doc["checkpoint"], verifiers)
        checkpoint = note.parse_checkpoint(body)
    except note.NoteError as exc:
        raise StepFailed("checkpoint", f"not signed by a pinned key ({exc})") from None
    if not checkpoint.origin.endswith("/" + doc["tenant"]):
        raise StepFailed("tenant", f"the checkpoint is not the log of tenant {doc['tenant']!r}")
    size, root = checkpoint.size, checkpoint.root
    commit_entry = _entry(doc["map_commit"], "map_commit")
    if commit_entry.index != size - 1:
        raise StepFailed("map_commit", f"the commit is at {commit_entry.index}, not {size - 1}")
    try:
        commit = heads_map.decode_commit(commit_entry.body)
    except heads_map.MalformedCommit as exc:
        raise StepFailed("map_commit", str(exc)) from None
    if commit.log_size != size - 1:
        raise StepFailed("map_commit", f"the commit covers {commit.log_size} entries")
    _included("map_commit", commit_entry, size, root)
    if max_age is not None:
        age = ((now or datetime.now(UTC)) - commit.sealed_at).total_seconds()
        if age > max_age:
            raise StepFailed("max_age", f"the map was sealed {int(age)} s ago (> {max_age})")
    head = _map(doc, entity_id, commit)
    if head is not None:
        _current(doc, head, size, root)
    elif doc["version"] is not None or doc["certificate"] is not None:
        raise StepFailed("head", "an absence proof carries no version or certificate")
    if expect_status is not None and (head is None or head.status != expect_status):
        found = "absent" if head is None else head.status
        raise StepFailed("expected status", f"the status is {found}, not {expect_status}")
    if expect_version is not None and (head is None or head.version != expect_version):
        found = "absent" if head is None else f"version {head.version}"
        raise StepFailed("expected version", f"the current is {found}, not {expect_version}")
    return Verified(doc["tenant"], entity_id, size, commit, head)


def _map(doc: dict[str, Any], entity_id: uuid.UUID, commit: heads_map.MapCommit) -> Any:
    """The head the map proof proves (None: absent), after the map_proof and head steps."""
    try:
        proof = heads_map.proof_from_json(doc["map_proof"])
    except heads_map.MalformedProof as exc:
        raise StepFailed("shape", f"map_proof: {exc}") from None
    value = None if doc["head"] is None else _b64(doc["head"], "head")
    key = heads_map.entity_key(entity_id)
    try:
        sparse_merkle.check(commit.map_root, key, value, proof)
    except sparse_merkle.ProofFailure as exc:
        raise StepFailed("map_proof", str(exc)) from None
    if value is None:
        return None
    try:
        head = heads_map.decode_head(value)
    except heads_map.MalformedHead as exc:
        raise StepFailed("head", str(exc)) from None
    if head.entity_id != entity_id or head.kind != doc["kind"]:
        raise StepFailed("head", "the head names another entity or kind")
    if head.log_index >= commit.log_size:
        raise StepFailed("head", "the head's version is not below the commit")
    return head


def _current(doc: dict[str, Any], head: heads_map.Head, size: int, root: bytes) -> None:
    """The version and certificate steps of a head."""
    if doc["version"] is None:
        raise StepFailed("version", "the current version's entry is missing")
    version = _entry(doc["version"], "version")
    if version.index != head.log_index or merkle.leaf_hash(version.body) != head.leaf_hash:
        raise StepFailed("version", "the entry is not the one the head names")
    _included("version", version, size, root)
    if head.certificate_index is None:
        if doc["certificate"] is not None:
            raise StepFailed("certificate", "the head names no certificate")
        return
    if doc["certificate"] is None:
        raise StepFailed("certificate", "the head names a certificate; it is missing")
    certificate = _entry(doc["certificate"], "certificate")
    if certificate.index != head.certificate_index:
        raise StepFailed("certificate", "the entry is not the one the head names")
    _included("certificate", certificate, size, root)
