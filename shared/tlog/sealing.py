"""Sealing a tenant's log: sign a checkpoint of what was appended since the last one, and
check a checkpoint against the keys and the anchor store.

Sealing reads only the leaves appended since the last checkpoint and the O(log n) right-edge
subtree hashes, stores the newly completed subtrees, proves the new tree consistent with the
previous checkpoint and with the anchor store, signs a C2SP checkpoint, stores it, and then
anchors it outside the database. When anything is new, the map step (``map_commit``) first
appends the map of heads' commit, so the checkpoint is signed over it as its last leaf.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from shared.config import settings
from shared.errors import IntegrityViolation, ServiceUnavailable
from shared.integrity import merkle, note
from shared.storage import tree
from shared.storage.engine import database
from shared.tlog import anchors, keys, map_commit, mirror, receipts, witnesses

log = logging.getLogger("plant.sealing")


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
    if checkpoint.origin != keys.origin(tenant):
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
    receipts.cover_cutover(conn, tenant, keyring.active)
    last = tree.latest_checkpoint(conn)
    check_anchor(conn, tenant, last, store)
    old = last.size if last else 0
    if last is not None:
        verify_note(last.note, keyring, tenant)
    map_commit.commit_map(conn, tenant, old)  # the map's commit becomes the last leaf signed
    size = tree.log_size(conn)
    if last is not None and size == old:
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
    stray = tree.nodes_beyond(conn, old)
    if stray:
        raise IntegrityViolation(
            f"subtree hashes are stored past the sealed size {old}: {stray[:10]}",
            finding="inserted",
            nodes=[list(key) for key in stray[:100]],
        )
    reader = tree.DbNodes(conn)
    try:
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
    except merkle.MissingNode as exc:
        raise IntegrityViolation(str(exc), finding="missing") from exc
    tree.insert_nodes(conn, nodes)
    body = note.checkpoint_body(keys.origin(tenant), size, root)
    signed = note.sign_note(body, [keyring.active])
    tree.insert_checkpoint(conn, size, root, signed)
    return Sealed(tree.StoredCheckpoint(size, root, signed), True, len(leaves), reader.rows_read)


def seal(tenant: str) -> Sealed:
    """Seal the tenant's log and anchor the new checkpoint (idempotent when nothing is new),
    then, never failing the seal, ask its witnesses to cosign (``witnesses``, bounded in
    time) and write the static tile mirror, checkpoint last (``mirror``)."""
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
    witnesses.collect(tenant)
    _mirror(tenant)
    return sealed


def _mirror(tenant: str) -> None:
    """Step after the anchor: the mirror is a copy for readers; a failure is logged and made
    good by the next seal (it writes from the mirror's own size)."""
    try:
        mirror.publish(tenant)
    except Exception as exc:  # any store's error: the seal stands regardless
        log.error("the tile mirror of %s was not written: %s", tenant, exc)
