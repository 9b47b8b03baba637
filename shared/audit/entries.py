"""The entries pass: every leaf in range recomputed from its stored bytes and the signed root
rebuilt from them, range by range, each range read here or scanned in a worker process
(``scan``) and merged in log order (``merge``), so that both find the same in the same order.
Also the rows past the log's size, which no append wrote."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from shared.audit import map_check, map_feed, order, reads, receipts, versions
from shared.audit.findings import Finding
from shared.audit.state import AuditState, Held, Opening, Row, Summaries, packed, unpacked
from shared.audit.workers import Workers
from shared.integrity import merkle, native_rows
from shared.registry import collector
from shared.storage import copyread, tree
from shared.storage.engine import database
from shared.tlog.map_commit import status_of

# The entries of a range in index order, fixed-width columns first, so that a well-formed
# row is split with one struct call.
_ENTRIES = (
    "SELECT idx, version, digest, leaf_hash, CAST(entity_id AS text), entry_type, kind, "
    "prev_digest, body FROM log_entries WHERE tenant_id = current_setting('plant.tenant') "
    "AND idx >= {start} AND idx < {end} ORDER BY idx"
)
_ENTRY_COLUMNS = (
    copyread.INT8,
    copyread.INT4,
    copyread.raw(32),
    copyread.raw(32),
    copyread.raw(36),
    copyread.TEXT,
    copyread.TEXT,
    copyread.BYTEA,
    copyread.BYTEA,
)


@dataclass
class Kept:
    """What the pass keeps of the entries besides the summaries: their bytes only of
    certificates and of entries that disagree with the tree or their columns, so that memory
    does not grow with the bytes logged."""

    rows: list[Row] = field(default_factory=list)
    mismatched: list[tuple[Row, bytes]] = field(default_factory=list)  # with the leaf made
    moved_from: dict[bytes, int] = field(default_factory=dict)  # stored leaf -> its index

    def extend(self, other: Kept) -> None:
        """Another range's kept rows after these: the order they were read in."""
        self.rows.extend(other.rows)
        self.mismatched.extend(other.mismatched)
        self.moved_from.update(other.moved_from)


@dataclass
class Scanned:
    """What one range's scan found, for the audit to merge in log order."""

    low: int
    high: int
    intact: bool  # no entry of the range is missing
    leaves: bytes  # the recomputed leaf hashes, in row order, joined
    subtrees: list[tuple[int, bytes]]  # the same as a tree of their own makes them
    findings: list[Finding]
    kept: Kept
    latest: Summaries  # as ``AuditState.latest``, for this range alone
    opening: Opening
    irregular: set[str]
    rows_read: int
    entries_verified: int
    feed: map_feed.Feed | None = None  # what the map pass needs of the range, when asked

    def __getstate__(self) -> dict[str, Any]:
        """The summaries (most of what goes back: one per entity) and the map's feed as
        ``packed`` bytes, in one: an id, an index or a name they share arrives as one object,
        not one a dict; pickle takes the rest."""
        state = dict(self.__dict__)
        feed = state.pop("feed")
        state["latest"] = packed(self.latest, None if feed is None else feed.plain())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """The summaries and the feed back from ``packed`` bytes."""
        state["latest"], feed = unpacked(state["latest"])
        state["feed"] = None if feed is None else map_feed.Feed.from_plain(feed)
        self.__dict__.update(state)


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
    """``_range`` read here, what it read for the map handed to ``replay``."""
    state.map_feed = None if replay is None else map_feed.Feed()
    try:
        return _range(state, low, high, builder, kept)
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
    these, and what it read for the map goes to ``replay``. Returns what ``_range`` would
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


def _range(
    state: AuditState,
    low: int,
    high: int,
    builder: merkle.RootBuilder | list[bytes] | None,
    kept: Kept,
) -> bool:
    """Entries [low, high): their stored leaf hashes in one query, then the entries as one
    binary COPY, streamed a socket read at a time. Returns whether none is missing (the
    leaves go to ``builder`` while none has been)."""
    joined, by_index = _stored_range(state, low, high)
    query = _ENTRIES.format(start=copyread.int_literal(low), end=copyread.int_literal(high))
    reported, feed, latest = state.reported, state.map_feed, state.latest
    present: set[int] | None = None  # only once an index is skipped
    expected = low
    for rows in copyread.copy_batches(state.conn, query, _ENTRY_COLUMNS):
        hashed, flags = native_rows.entry_hashes(rows, low, joined)
        leaves = [hashed[at : at + 32] for at in range(0, len(hashed), 32)]
        for values, flag, leaf in zip(rows, flags, leaves, strict=True):
            idx, version, digest, leaf_column, raw_id, entry_type, kind, prev, body = values
            # one str an entry: its summary and its map feed share it (and ``Scanned``
            # sends it once), so the audit holds each id once, not once a dict
            entity_id = raw_id.decode()
            if idx != expected:
                if idx > expected and present is None:
                    present = set(range(low, expected))
                    builder = None  # entries are missing: named below, no root rebuilt
                expected = max(expected, idx + 1)  # a repeat still goes into the root
            else:
                expected = idx + 1
            if present is not None:
                present.add(idx)
            stored: bytes | None = leaf
            if not flag & native_rows.SAME_AS_STORED:  # other bytes, or looked up here
                offset = 32 * (idx - low)
                stored = joined[offset : offset + 32] if joined else by_index.get(idx)
            if leaf != stored:
                row = Row(
                    idx, entry_type, kind, entity_id, version, body, digest, leaf_column,
                    prev,
                )  # fmt: skip
                _mismatched(state, kept, row, leaf, stored)
                if feed is not None:
                    status = status_of(body) if entry_type == "version" else None
                    feed.entry(
                        idx, entry_type, kind, row.entity_id, version, leaf_column, status, body
                    )
                continue
            column = None
            if idx in reported:
                column = ""
            elif flag & native_rows.LEAF_DIFFERS:
                column = "leaf_hash"
            elif flag & native_rows.DIGEST_DIFFERS:
                column = "digest"
            elif entry_type == "version":
                column = versions.version(state, idx, kind, entity_id, version, digest, prev, body)
            if feed is not None:
                _feed(feed, latest, idx, entry_type, kind, entity_id, version,
                      leaf_column, body, column)  # fmt: skip
            if column is None and entry_type == "version":
                continue
            certificate = body if entry_type == "certificate" else b""
            row = Row(
                idx, entry_type, kind, entity_id, version, certificate, digest,
                leaf_column, prev,
            )  # fmt: skip
            _keep(state, kept, row, column)
        state.rows_read += len(rows)
        state.entries_verified += len(rows)
        if builder is not None:
            builder.extend(leaves)
    if present is not None or expected != high:
        present = present if present is not None else set(range(low, expected))
        _missing(state, low, high, present, joined, by_index, kept)
        return False
    return builder is not None


def _feed(
    feed: map_feed.Feed, latest: dict[str, Any], idx: int, entry_type: str, kind: str,
    entity_id: str, version: int, leaf: bytes, body: bytes, column: str | None,
) -> None:  # fmt: skip
    """An entry for the map: a version's status is the one its summary took from the parse
    just made, unless the version was not summarised (then its bytes are read for it)."""
    status = None
    if entry_type == "version":
        summary = latest.get(entity_id) if column is None else None
        status = summary.status if summary is not None and summary.log_index == idx else None
        if status is None:
            status = status_of(body)
    feed.entry(idx, entry_type, kind, entity_id, version, leaf, status, body)


def _mismatched(state: AuditState, kept: Kept, row: Row, leaf: bytes, stored: bytes | None) -> None:
    """An entry whose bytes disagree with the tree: kept with its bytes, to name what
    changed once every range is read (``versions.classify``)."""
    if stored is not None:
        kept.moved_from[stored] = row.index
    kept.mismatched.append((row, leaf))
    kept.rows.append(row)
    state.irregular.add(row.entity_id)


def _keep(state: AuditState, kept: Kept, row: Row, column: str | None) -> None:
    """A certificate, or a version already reported or contradicted by its ``column``
    (named now): kept for the later passes; such a version's chain is checked as a whole."""
    kept.rows.append(row)
    if column:
        versions.column_finding(state, row, column)
    if row.entry_type == "version":
        state.irregular.add(row.entity_id)


def _missing(
    state: AuditState,
    low: int,
    high: int,
    present: set[int],
    joined: bytes | None,
    by_index: dict[int, bytes],
    kept: Kept,
) -> None:
    """Each index of [low, high) with no entry, named; its stored leaf, if any, is where
    bytes moved elsewhere came from."""
    for i in range(low, high):
        if i not in present:
            state.add("missing", f"log entry {i} is missing", log_index=i)
            stored = joined[32 * (i - low) : 32 * (i - low) + 32] if joined else by_index.get(i)
            if stored is not None:
                kept.moved_from[stored] = i


def _stored_range(state: AuditState, start: int, end: int) -> tuple[bytes | None, dict[int, bytes]]:
    """The stored level-0 hashes of [start, end): when all are there (the usual case), one
    concatenated value to slice; otherwise those there are, by index."""
    count, joined = state.conn.execute(
        text(
            "SELECT count(*), string_agg(hash, ''::bytea ORDER BY idx) FROM log_nodes "
            "WHERE tenant_id = current_setting('plant.tenant') "
            "AND level = 0 AND idx >= :start AND idx < :end"
        ),
        {"start": start, "end": end},
    ).one()
    if int(count) == end - start and joined is not None and len(joined) == 32 * count:
        state.rows_read += int(count)
        return bytes(joined), {}
    return None, reads.stored_leaves(state, start, end)


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


def scan(
    tenant: str,
    snapshot: str | None,
    low: int,
    high: int,
    reported: set[int],
    feed: bool = False,
) -> Scanned:
    """Entries [low, high) scanned as the audit would, in the audit's snapshot, for it to
    ``merge``; ``reported`` are the indices it has already named; ``feed``: what the map
    pass needs of the range goes back too (a worker's task: module level, so a spawned
    process can import it). No snapshot: a range up to a sealed checkpoint, read in a
    snapshot of its own (an audit part's)."""
    with (
        collector.paused(),  # what it reads lives until it is sent back
        database().transaction(tenant, snapshot=True, shared_snapshot=snapshot) as conn,
    ):
        state = AuditState(conn, tenant, reported=reported, opening={})
        state.map_feed = map_feed.Feed() if feed else None
        leaves: list[bytes] = []
        kept = Kept()
        intact = _range(state, low, high, leaves, kept)
        own = merkle.RootBuilder(tree.DbNodes(conn), 0)
        own.extend(leaves)
        return Scanned(
            low,
            high,
            intact,
            b"".join(leaves),
            own.subtrees(),
            state.findings,
            kept,
            state.latest,
            state.opening or {},
            state.irregular,
            state.rows_read,
            state.entries_verified,
            state.map_feed,
        )


def scanned(
    workers: Workers,
    tenant: str,
    snapshot: str,
    ranges: Sequence[tuple[int, int]],
    reported: set[int],
    feed: bool = False,
) -> Iterator[Scanned]:
    """Each range's scan, in the order given."""
    return workers.run(
        scan, [(tenant, snapshot, low, high, reported, feed) for low, high in ranges]
    )
