"""The entries pass: every leaf in range recomputed from its stored bytes and the signed root
rebuilt from them, range by range, each range read here or scanned in a worker process
(``entry_ranges``) and merged in log order (``merge``), so that both find the same in the
same order. Also the rows past the log's size, which no append wrote."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator

from sqlalchemy import text

from shared.audit import entry_ranges, map_check, map_feed, order, receipts, versions
from shared.audit.entry_ranges import Scanned, scanned
from shared.audit.entry_rows import Kept
from shared.audit.state import AuditState, Held, Row
from shared.integrity import merkle
from shared.storage import copyread, tree


def checked(
    state: AuditState,
    start: int,
    checkpoint: tree.StoredCheckpoint,
    progress: Callable[[int, int], None] | None = None,
    replay: map_check.Replay | None = None,
) -> list[Row]:
    """Recompute every leaf in [start, checkpoint.size) and rebuild the signed root.

    Each entry is hashed and parsed once; what is kept per entity is its newest version's
    summary (``state.latest``), for the chains, heads and rules, and what the map needs of
    it goes to ``replay``, in log order. Returns the rows ``Kept``.
    """
    size = checkpoint.size
    reader = tree.DbNodes(state.conn)
    try:
        builder: merkle.RootBuilder | None = merkle.RootBuilder(reader, start)
    except merkle.MissingNode:
        builder = None  # a subtree before the range is gone: ``nodes`` names it, no root rebuilt
    kept = Kept()
    # a full audit's first ranges may come from parts other processes wrote (``parts``)
    covered = state.parts.covering(size) if state.parts and not (start or state.reported) else 0
    ranges = split(max(start, covered), size, copyread.RANGE)
    # each range's end and how it is taken in: scanned here, or merged from a worker
    steps: Iterator[tuple[int, Callable[[merkle.RootBuilder | None, Kept], bool]]]
    workers = state.pool_for(len(ranges), size - start)
    if workers is not None:
        if not isinstance(state.latest, Held):  # what the workers send, kept as sent
            state.latest = Held(state.latest)
        state.range_summaries = [] if start == 0 and not covered else None
        parts = scanned(
            workers, state.tenant, state.snapshot, ranges, set(state.reported), replay is not None
        )
        steps = ((part.high, functools.partial(merge, state, part, replay)) for part in parts)
    else:
        steps = ((high, functools.partial(_fed, state, low, high, replay)) for low, high in ranges)
    if covered and state.parts:  # the parts' ranges come first, each with its map feed
        took = state.parts.scanned()
        taken = ((p.high, functools.partial(merge, state, p, replay)) for p in took)
        steps = itertools.chain(taken, steps)
    intact = builder is not None
    for high, take in steps:
        builds = builder if intact else None
        intact = take(builds, kept) and intact
        if progress:
            progress(high - start, size - start)
    state.rows_read += reader.rows_read
    # The signed root, rebuilt from the bytes (plus subtrees verified by earlier runs).
    rebuilt = intact and builder is not None and size and builder.root() == checkpoint.root
    if rebuilt and kept.mismatched:
        _leaves_altered(state, kept.mismatched, set(kept.moved_from.values()))
    else:
        versions.classify(state, kept.mismatched, kept.moved_from)
    if intact and builder and size and not rebuilt and not kept.mismatched:
        if order.swapped(state, size):
            return kept.rows
        state.add(
            "checkpoint_invalid",
            f"the entries do not rebuild the root signed at size {size}",
            extra={"checkpoint_size": size},
        )
    return kept.rows


def split(start: int, end: int, step: int) -> list[tuple[int, int]]:
    """[start, end) as the ranges the pass reads (or hands out) one at a time."""
    return [(low, min(low + step, end)) for low in range(start, end, step)]


def _leaves_altered(
    state: AuditState, mismatched: list[tuple[Row, bytes]], stored: set[int]
) -> None:
    """Entries whose bytes disagree with their stored level-0 hash although the bytes
    rebuild the signed root: the bytes are genuine, the stored hash (a node) was changed
    (one not stored at all is named by the nodes pass)."""
    for row, _ in mismatched:
        if row.index not in stored:
            continue
        state.add(
            "altered",
            f"the stored leaf hash of entry {row.index} disagrees with its bytes, which the "
            "signed root vouches for",
            section="log_nodes",
            extra={"level": 0, "node_index": row.index},
        )


def _fed(
    state: AuditState,
    low: int,
    high: int,
    replay: map_check.Replay | None,
    builder: merkle.RootBuilder | None,
    kept: Kept,
) -> bool:
    """``entry_ranges.read`` here, what it read for the map handed to ``replay``."""
    state.map_feed = None if replay is None else map_feed.Feed()
    try:
        return entry_ranges.read(state, low, high, builder, kept)
    finally:
        if replay is not None and state.map_feed is not None:
            replay.take(state.map_feed)
        state.map_feed = None


def merge(
    state: AuditState,
    part: Scanned,
    replay: map_check.Replay | None,
    builder: merkle.RootBuilder | None,
    kept: Kept,
) -> bool:
    """A range another process scanned, taken in as if read here, after the ranges before
    it: each entity's first version in it is linked to the newest read before (as
    ``versions.version`` links one read here), then its findings, rows and summaries join
    these, and what it read for the map goes to ``replay``. Returns what ``entry_ranges.read`` would
    have."""
    if replay is not None and part.feed is not None:
        replay.take(part.feed)
    latest, irregular, findings = state.latest, state.irregular, part.findings
    done = 0
    for entity_id, (number, prev_digest, index, kind, position) in part.opening.items():
        for finding in findings[done:position]:  # those found before it, in order
            state.note(finding)
        done = position
        if entity_id not in irregular:
            versions.link(state, kind, entity_id, number, prev_digest, index, latest.get(entity_id))
    for finding in findings[done:]:
        state.note(finding)
    # entities read before this range: a first version 1 in it follows nothing of theirs
    # (what ``versions.link`` makes of it), and the newer summary wins
    seen = part.latest.keys() & latest.keys()
    state.shared |= seen
    if state.range_summaries is not None:  # its ids: the summaries are all in ``latest``
        state.range_summaries.append(list(part.latest))
    newer = {}
    for entity_id in seen:
        if entity_id not in part.opening:
            irregular.add(entity_id)
        known, summary = latest[entity_id], part.latest[entity_id]
        newer[entity_id] = (
            summary._replace(first=known.first) if summary.version > known.version else known
        )
    irregular |= part.irregular
    latest.update(part.latest)
    latest.update(newer)
    kept.extend(part.kept)
    state.rows_read += part.rows_read
    state.entries_verified += part.entries_verified
    if not part.intact or builder is None:
        return False
    if not builder.extend_subtrees(part.subtrees):
        leaves = part.leaves
        builder.extend([leaves[at : at + 32] for at in range(0, len(leaves), 32)])
    return True


def beyond(state: AuditState, size: int, sealed: int) -> None:
    """Rows past the log's committed size were never appended by the registry, unless a
    checkpoint covers them: then the counter (``log_heads.size``) was moved back, and that
    is what is named."""
    if size < sealed:  # what lies past a counter moved back cannot be told from genuine
        state.add(
            "rollback",
            f"the log's size is {size} but a checkpoint covers {sealed} entries",
            section="log_heads",
            field="size",
            extra={"checkpoint_size": sealed},
        )
        return
    rows = state.conn.execute(
        text(
            "SELECT idx, kind, CAST(entity_id AS text), version, leaf_hash FROM log_entries "
            "WHERE tenant_id = current_setting('plant.tenant') AND idx >= :size ORDER BY idx"
        ),
        {"size": size},
    ).all()
    state.rows_read += len(rows)
    # entries a valid write receipt vouches for were appended by the registry: the counter
    # was moved back over them (issue 22), they were not slipped in
    appended = receipts.genuine(state, [(int(r[0]), bytes(r[4])) for r in rows])
    if appended:
        state.add(
            "rollback",
            f"the log's size is {size} but entries up to {max(appended)} past it carry "
            "valid write receipts",
            section="log_heads",
            field="size",
            extra={"receipted_index": max(appended)},
        )
    for idx, kind, entity_id, version, _ in rows:
        if idx in appended:
            continue
        state.add(
            "inserted",
            f"entry {idx} lies beyond the log's size {size}",
            entity_type=kind,
            entity_id=entity_id,
            version=int(version),
            log_index=int(idx),
        )
