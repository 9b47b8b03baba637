"""The checkpoints pass: every signed checkpoint in range verifies and is consistent with
the one before, the anchor store holds nothing the log has since lost (a rollback), and every
stored witness cosignature verifies with the configured witness's key."""

from __future__ import annotations

from sqlalchemy import text

from shared import tlog
from shared.audit.state import AuditState
from shared.errors import IntegrityViolation
from shared.integrity import cosignature, merkle, note
from shared.storage import cosignatures, tree
from shared.tlog import witnesses


def verified(state: AuditState, since: int) -> tree.StoredCheckpoint | None:
    """Verify every checkpoint of size >= ``since``: signature, origin, stored columns, and
    consistency of each with the one before. Returns the latest valid one."""
    rows = state.conn.execute(
        text(
            "SELECT size, root, note FROM checkpoints "
            "WHERE tenant_id = current_setting('plant.tenant') AND size >= :since ORDER BY size"
        ),
        {"since": since},
    ).all()
    state.rows_read += len(rows)
    latest: tree.StoredCheckpoint | None = None
    previous: tree.StoredCheckpoint | None = None
    for size, root, text_ in rows:
        stored = tree.StoredCheckpoint(int(size), bytes(root), text_)
        try:
            body, _ = note.open_note(stored.note, list(state.keyring.verifiers))
            parsed = note.parse_checkpoint(body)
        except note.NoteError as exc:
            state.add(
                "checkpoint_invalid",
                f"checkpoint {stored.size} does not verify: {exc}",
                extra={"checkpoint_size": stored.size},
            )
            continue
        if (parsed.origin, parsed.size, parsed.root) != (
            tlog.origin(state.tenant),
            stored.size,
            stored.root,
        ):
            state.add(
                "checkpoint_invalid",
                f"checkpoint {stored.size}'s signed text disagrees with its row",
                extra={"checkpoint_size": stored.size},
            )
            continue
        if previous is not None and previous.size > 0:
            _consistent(state, previous, stored)
        previous = latest = stored
    return latest


def _consistent(
    state: AuditState, previous: tree.StoredCheckpoint, stored: tree.StoredCheckpoint
) -> None:
    """A checkpoint must extend the one before it: a consistency proof from the stored tree."""
    reader = tree.DbNodes(state.conn)
    try:
        proof = merkle.consistency_proof(reader, previous.size, stored.size)
    except merkle.MissingNode:
        return  # a subtree is not stored: the nodes pass names it
    state.rows_read += reader.rows_read
    if not merkle.verify_consistency(previous.size, stored.size, previous.root, stored.root, proof):
        state.add(
            "checkpoint_invalid",
            f"checkpoint {stored.size} is not consistent with {previous.size}",
            extra={"checkpoint_size": stored.size},
        )


def anchor(state: AuditState, anchored: tuple[int, str] | None) -> None:
    """The snapshot's checkpoints against the anchor store's latest, read before it."""
    last = tree.latest_checkpoint(state.conn)
    try:
        tlog.check_anchored(state.conn, last, anchored)
    except IntegrityViolation as exc:
        state.add(
            "rollback", exc.detail, extra={"anchored_size": exc.extensions.get("anchored_size")}
        )


def cosigned(state: AuditState) -> None:
    """Each stored cosignature/v1 line over its checkpoint's text, with the key configured
    for that witness's name (a line by a witness no longer configured cannot be verified,
    and is reported as such)."""
    known = {w.name: w.key for w in witnesses.configured(state.tenant)}
    lines = cosignatures.every_line(state.conn)
    state.rows_read += len(lines)
    for stored in lines:
        key = known.get(stored.witness)
        why: str | None
        if key is None:
            why = "no witness of that name is configured, so it cannot be verified"
        else:
            text = stored.note[: stored.note.index("\n\n") + 1]
            try:
                report = cosignature.check_cosignatures(text + "\n" + stored.line, [key])
                why = report.failures.get(stored.witness)
            except cosignature.CosignatureError as exc:
                why = str(exc)
        if why is not None:
            state.add(
                "signature_invalid",
                f"the cosignature by {stored.witness} on checkpoint {stored.size}: {why}",
                extra={"checkpoint_size": stored.size},
            )


def present(state: AuditState, anchored: list[int], logged: list[int]) -> None:
    """Every checkpoint that the anchor store holds (``anchored``, read before the snapshot)
    or that a logged audit report names (``logged``) is stored: an older checkpoint deleted
    is named, as the newest one is by ``anchor`` (one row a seal: read whole, even by an
    incremental audit)."""
    stored = {
        int(r[0])
        for r in state.conn.execute(
            text("SELECT size FROM checkpoints WHERE tenant_id = current_setting('plant.tenant')")
        )
    }
    state.rows_read += len(stored)
    newest = max(stored, default=0)
    named = {s: "the anchor store" for s in anchored if s <= newest}
    named.update({s: "an audit report in the log" for s in logged if s > 0})
    for size in sorted(named.keys() - stored):
        state.add(
            "missing",
            f"checkpoint {size}, held by {named[size]}, is not stored",
            section="checkpoints",
            extra={"checkpoint_size": size},
        )
