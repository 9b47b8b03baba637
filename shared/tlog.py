"""Operations on a tenant's verifiable log: seal checkpoints, serve entries and proofs.

Sealing reads only the leaves appended since the last checkpoint and the O(log n) right-edge
subtree hashes, stores the newly completed subtrees, proves the new tree consistent with the
previous checkpoint and with the anchor store, signs a C2SP checkpoint, stores it, and then
anchors it outside the database.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from shared import anchors, keys, path_params, query_params
from shared.auth import READ_ROLES, Principal
from shared.config import settings
from shared.errors import IntegrityViolation, InvalidQuery, NotFound, ServiceUnavailable
from shared.integrity import digests, merkle, note
from shared.storage import ledger, tree
from shared.storage.engine import database


def origin(tenant: str) -> str:
    """The checkpoint origin line naming one tenant's log."""
    return f"{settings().log_origin_prefix}/{tenant}"


@dataclass(frozen=True)
class Sealed:
    checkpoint: tree.StoredCheckpoint
    created: bool
    leaves_read: int
    nodes_read: int


def verify_note(text: str, keyring: keys.Keyring, tenant: str) -> note.Checkpoint:
    try:
        body, _ = note.open_note(text, list(keyring.verifiers))
        checkpoint = note.parse_checkpoint(body)
    except note.NoteError as exc:
        raise IntegrityViolation(
            f"a stored checkpoint does not verify: {exc}", finding="checkpoint_invalid"
        ) from exc
    if checkpoint.origin != origin(tenant):
        raise IntegrityViolation(
            "a stored checkpoint names another log", finding="checkpoint_invalid"
        )
    return checkpoint


def check_anchor(
    conn: Connection, tenant: str, last: tree.StoredCheckpoint | None, store: anchors.AnchorStore
) -> None:
    """Refuse a database whose checkpoints are behind, or disagree with, the anchor store."""
    check_anchored(conn, last, store.latest(tenant))


def check_anchored(
    conn: Connection, last: tree.StoredCheckpoint | None, anchored: tuple[int, str] | None
) -> None:
    """``check_anchor`` against an anchor read earlier: a reader of one database snapshot
    reads the anchor before taking it, since a seal commits before it anchors."""
    if anchored is None:
        return
    size, text = anchored
    if last is None or last.size < size:
        raise IntegrityViolation(
            f"rollback: the anchor holds a checkpoint of size {size}, the database's latest "
            f"is {last.size if last else 'none'}",
            finding="rollback",
            anchored_size=size,
        )
    stored = last if last.size == size else tree.checkpoint_at(conn, size)
    if stored is None or stored.note != text:
        raise IntegrityViolation(
            f"rollback: the database's checkpoint of size {size} differs from the anchored one",
            finding="rollback",
            anchored_size=size,
        )


def seal_in(conn: Connection, tenant: str, store: anchors.AnchorStore) -> Sealed:
    """Seal inside the caller's transaction (see ``seal``)."""
    keyring = keys.keyring()
    tree.lock_sealer(conn)
    last = tree.latest_checkpoint(conn)
    check_anchor(conn, tenant, last, store)
    size = tree.log_size(conn)
    old = last.size if last else 0
    if last is not None:
        verify_note(last.note, keyring, tenant)
        if size == old:
            return Sealed(last, False, 0, 0)
    if size < old:
        raise IntegrityViolation(
            f"rollback: the log has {size} entries but was checkpointed at {old}",
            finding="rollback",
        )
    try:
        leaves = tree.leaf_hashes(conn, old, size)
    except tree.LogGap as exc:
        raise IntegrityViolation(str(exc), finding="missing", indices=exc.missing) from exc
    reader = tree.DbNodes(conn)
    nodes = merkle.append_nodes(reader, old, leaves)
    overlay = tree.OverlayNodes(reader, {(lvl, idx): h for lvl, idx, h in nodes})
    root = merkle.root(overlay, size)
    if last is not None and old > 0:
        if merkle.root(overlay, old) != last.root:
            raise IntegrityViolation(
                "the stored tree no longer matches the last checkpoint", finding="altered"
            )
        proof = merkle.consistency_proof(overlay, old, size)
        if not merkle.verify_consistency(old, size, last.root, root, proof):
            raise IntegrityViolation("the new tree is not consistent with the last checkpoint")
    tree.insert_nodes(conn, nodes)
    signed = note.sign_note(note.checkpoint_body(origin(tenant), size, root), [keyring.active])
    tree.insert_checkpoint(conn, size, root, signed)
    return Sealed(tree.StoredCheckpoint(size, root, signed), True, len(leaves), reader.rows_read)


def seal(tenant: str) -> Sealed:
    """Seal the tenant's log and anchor the new checkpoint (idempotent when nothing is new)."""
    store = anchors.anchor_store(settings())
    with database().transaction(tenant) as conn:
        sealed = seal_in(conn, tenant, store)
    try:
        store.put(tenant, sealed.checkpoint.size, sealed.checkpoint.note)
    except anchors.AnchorConflict as exc:
        raise IntegrityViolation(str(exc), finding="rollback") from exc
    except OSError as exc:
        raise ServiceUnavailable(
            "the anchor store is unavailable; the checkpoint is stored "
            "and will be anchored by the next seal"
        ) from exc
    return sealed


# ---- reads --------------------------------------------------------------------------------


def latest_checkpoint(principal: Principal) -> tree.StoredCheckpoint:
    principal.require(*READ_ROLES)
    with database().transaction(principal.tenant) as conn:
        last = tree.latest_checkpoint(conn)
    if last is None:
        raise NotFound("the log has no checkpoint yet (POST /log/seal)")
    return last


def checkpoint_at(principal: Principal, query: dict[str, str]) -> tree.StoredCheckpoint:
    principal.require(*READ_ROLES)
    size = query_params.integer(query, "size", minimum=1, required=True)
    assert size is not None
    with database().transaction(principal.tenant) as conn:
        found = tree.checkpoint_at(conn, size)
    if found is None:
        raise NotFound(f"no checkpoint of size {size}")
    return found


def entry(principal: Principal, raw_index: str) -> dict[str, Any]:
    principal.require(*READ_ROLES)
    index = path_params.number(raw_index, "index", minimum=0, maximum=query_params.MAX_INTEGER)
    found = None
    if index is not None:
        with database().transaction(principal.tenant) as conn:
            found = ledger.entry_at(conn, index)
    if found is None:
        raise NotFound(f"no entry {raw_index}")
    return {
        "index": found.index,
        "entry_type": found.entry_type,
        "entity_type": found.kind,
        "entity_id": found.entity_id,
        "version": found.version,
        "body": digests.b64(found.body),
        "leaf_hash": digests.b64(found.leaf_hash),
        "digest": "sha256:" + found.digest.hex(),
        "created_at": found.created_at,
    }


def _sealed_size(conn: Connection) -> int:
    last = tree.latest_checkpoint(conn)
    return last.size if last else 0


def _invalid_query(field: str, message: str) -> InvalidQuery:
    return InvalidQuery([{"field": field, "message": message}])


def inclusion(principal: Principal, query: dict[str, str]) -> dict[str, Any]:
    principal.require(*READ_ROLES)
    size = query_params.integer(query, "size", minimum=1)
    index = query_params.integer(query, "index")
    leaf_b64 = query.get("leaf_hash")
    if (index is None) == (leaf_b64 is None):
        raise _invalid_query("index", "send exactly one of index and leaf_hash")
    with database().transaction(principal.tenant) as conn:
        sealed = _sealed_size(conn)
        size = sealed if size is None else size
        if not 0 < size <= sealed:
            raise _invalid_query("size", f"size must be from 1 to the checkpointed size {sealed}")
        if leaf_b64 is not None:
            index = tree.index_of_leaf(conn, _decode_hash(leaf_b64), size)
            if index is None:
                raise NotFound("no entry with that leaf hash in the tree of that size")
        assert index is not None
        if index >= size:
            raise _invalid_query("index", f"index must be below size {size}")
        reader = tree.proof_nodes(conn, principal.tenant)
        proof = merkle.inclusion_proof(reader, index, size)
        leaf = reader.get_nodes([(0, index)])[(0, index)]
    return {
        "index": index,
        "tree_size": size,
        "leaf_hash": digests.b64(leaf),
        "proof": [digests.b64(h) for h in proof],
    }


def _decode_hash(raw: str) -> bytes:
    try:
        value = base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise _invalid_query("leaf_hash", "leaf_hash must be base64") from exc
    if len(value) != 32:
        raise _invalid_query("leaf_hash", "leaf_hash must be 32 bytes")
    return value


def consistency(principal: Principal, query: dict[str, str]) -> dict[str, Any]:
    principal.require(*READ_ROLES)
    old = query_params.integer(query, "old", minimum=1, required=True)
    new = query_params.integer(query, "new", minimum=1, required=True)
    assert old is not None and new is not None
    with database().transaction(principal.tenant) as conn:
        sealed = _sealed_size(conn)
        if not 0 < new <= sealed:
            raise _invalid_query("new", f"new must be from 1 to the checkpointed size {sealed}")
        if not 0 < old <= new:
            raise _invalid_query("old", "old must be from 1 to new")
        proof = merkle.consistency_proof(tree.proof_nodes(conn, principal.tenant), old, new)
    return {"old_size": old, "new_size": new, "proof": [digests.b64(h) for h in proof]}


def public_keys() -> dict[str, Any]:
    ring = keys.keyring()
    return {"active": ring.active.vkey, "keys": ring.vkeys}


def version_proof(principal: Principal, log_index: int) -> dict[str, Any]:
    """Inclusion proof of one entry against the latest checkpoint, with that checkpoint."""
    with database().transaction(principal.tenant) as conn:
        last = tree.latest_checkpoint(conn)
        if last is None or log_index >= last.size:
            raise NotFound(
                "this version is not in a checkpoint yet; it will be after the next seal"
            )
        proof = merkle.inclusion_proof(
            tree.proof_nodes(conn, principal.tenant), log_index, last.size
        )
    return {
        "index": log_index,
        "tree_size": last.size,
        "proof": [digests.b64(h) for h in proof],
        "checkpoint": last.note,
    }
