"""One range's entries taken in row by row, in log order: each leaf held to the stored hash
and to the row's columns, each version to its bytes (``versions.version``), what the later
passes need of the others kept (``Kept``) and what the map needs of each fed to it
(``map_feed``). The extension takes in the plain versions (``native_rows.version_rows``) up
to the first row it is not sure of; this loop, its twin, takes that row and every other
(tests/audit/test_version_rows.py holds the two to the same state)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.audit import map_feed, versions
from shared.audit.state import AuditState, Row, Summary
from shared.integrity import merkle, native_rows
from shared.tlog.map_commit import status_of


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


class Reading:
    """A range [low, ...) being read: the index expected next, the indices present once one
    was skipped, and where its leaves go (``builder``: None once an entry is missing)."""

    def __init__(
        self,
        state: AuditState,
        low: int,
        joined: bytes | None,
        by_index: dict[int, bytes],
        builder: merkle.RootBuilder | list[bytes] | None,
        kept: Kept,
    ) -> None:
        self.state, self.low, self.joined, self.by_index = state, low, joined, by_index
        self.builder, self.kept = builder, kept
        self.expected = low
        self.present: set[int] | None = None  # only once an index is skipped

    def batch(self, rows: list[tuple[Any, ...]]) -> None:
        """A batch of rows (idx, version, digest, leaf_hash, entity id bytes, entry type,
        kind, prev_digest, body) in index order, each checked and taken in."""
        hashed, flags = native_rows.entry_hashes(rows, self.low, self.joined)
        leaves = [hashed[at : at + 32] for at in range(0, len(hashed), 32)]
        at, count = 0, len(rows)
        while at < count:
            if self.present is None:  # the plain versions from here, compiled
                at = self._plain(rows, flags, at)
                if at == count:
                    break
            self.row(rows[at], flags[at], leaves[at])
            at += 1
        self.state.rows_read += count
        self.state.entries_verified += count
        if self.builder is not None:
            self.builder.extend(leaves)

    def _plain(self, rows: list[tuple[Any, ...]], flags: bytes, at: int) -> int:
        """Where the extension stopped taking the plain versions in from ``at``."""
        state, feed = self.state, self.state.map_feed
        at, self.expected = native_rows.version_rows(
            rows, flags, at, self.expected, state, versions.NAMES, map_feed.KINDS, Summary,
            None if feed is None else feed.segments[-1].versions,
        )  # fmt: skip
        return at

    def row(self, values: tuple[Any, ...], flag: int, leaf: bytes) -> None:
        """One row, its leaf ``leaf`` and its flags (``native_rows.entry_hashes``)."""
        state, kept, feed, low = self.state, self.kept, self.state.map_feed, self.low
        idx, version, digest, leaf_column, raw_id, entry_type, kind, prev, body = values
        # one str an entry: its summary and its map feed share it (and ``Scanned`` sends it
        # once), so the audit holds each id once, not once a dict
        entity_id = raw_id.decode()
        expected = self.expected
        if idx != expected:
            if idx > expected and self.present is None:
                self.present = set(range(low, expected))
                self.builder = None  # entries are missing: named at the end, no root rebuilt
            self.expected = max(expected, idx + 1)  # a repeat still goes into the root
        else:
            self.expected = idx + 1
        if self.present is not None:
            self.present.add(idx)
        stored: bytes | None = leaf
        if not flag & native_rows.SAME_AS_STORED:  # other bytes, or looked up here
            offset = 32 * (idx - low)
            stored = self.joined[offset : offset + 32] if self.joined else self.by_index.get(idx)
        if leaf != stored:
            row = Row(idx, entry_type, kind, entity_id, version, body, digest, leaf_column, prev)
            _mismatched(state, kept, row, leaf, stored)
            if feed is not None:
                status = status_of(body) if entry_type == "version" else None
                feed.entry(idx, entry_type, kind, entity_id, version, leaf_column, status, body)
            return
        column = None
        if idx in state.reported:
            column = ""
        elif flag & native_rows.LEAF_DIFFERS:
            column = "leaf_hash"
        elif flag & native_rows.DIGEST_DIFFERS:
            column = "digest"
        elif entry_type == "version":
            column = versions.version(state, idx, kind, entity_id, version, digest, prev, body)
        if feed is not None:
            _feed(feed, state.latest, idx, entry_type, kind, entity_id, version,
                  leaf_column, body, column)  # fmt: skip
        if column is None and entry_type == "version":
            return
        certificate = body if entry_type == "certificate" else b""
        row = Row(idx, entry_type, kind, entity_id, version, certificate, digest, leaf_column, prev)
        _keep(state, kept, row, column)

    def complete(self, high: int) -> bool:
        """The range read up to ``high``: each index with no entry named; whether none is
        missing and the leaves all went to the builder."""
        if self.present is None and self.expected == high:
            return self.builder is not None
        low = self.low
        present = self.present if self.present is not None else set(range(low, self.expected))
        for i in range(low, high):
            if i not in present:
                self.state.add("missing", f"log entry {i} is missing", log_index=i)
                # its stored leaf, if any, is where bytes moved elsewhere came from
                offset = 32 * (i - low)
                stored = self.joined[offset : offset + 32] if self.joined else self.by_index.get(i)
                if stored is not None:
                    self.kept.moved_from[stored] = i
        return False


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
