"""One range of the entries pass read: its stored leaf hashes in one query, its entries as
one binary COPY taken in batch by batch (``entry_rows.Reading``); and the same range scanned
in a worker process (``scan``), what it found sent back as ``Scanned`` for the audit to
``entries.merge`` in log order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from shared.audit import map_feed, reads
from shared.audit.entry_rows import Kept, Reading
from shared.audit.findings import Finding
from shared.audit.state import AuditState, Opening, Summaries, packed, unpacked
from shared.audit.workers import Workers
from shared.integrity import merkle
from shared.registry import collector
from shared.storage import copyread, tree
from shared.storage.engine import database

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


def read(
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
    reading = Reading(state, low, joined, by_index, builder, kept)
    for rows in copyread.copy_batches(state.conn, query, _ENTRY_COLUMNS):
        reading.batch(rows)
    return reading.complete(high)


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


def scan(
    tenant: str,
    snapshot: str | None,
    low: int,
    high: int,
    reported: set[int],
    feed: bool = False,
) -> Scanned:
    """Entries [low, high) scanned as the audit would, in the audit's snapshot, for it to
    ``entries.merge``; ``reported`` are the indices it has already named; ``feed``: what the map
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
        intact = read(state, low, high, leaves, kept)
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
