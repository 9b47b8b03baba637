"""A scanned range as an audit part carries it (``shared.audit.parts``): plain values for
``marshal``, and the map pass's feed (``map_feed.Feed``) packed compactly, so that the merge
replays the map from the parts in log order instead of reading the whole log again (issue 27,
decision 4).

A range's feed names, per stretch up to a ``map_commit``, each entity's newest version
(index, kind, number, leaf hash, status), certificate and other entries. Nearly every version
is also the range's summary of its entity (the part ships those anyway, ``entry_ranges.Scanned``):
such a version goes as its summary's position (a step from the previous one, four bytes that
compress to nothing when the steps are all one) and its leaf hash (32 bytes, the one thing a
summary lacks); any other version goes whole. A commit goes as its index alone: its bytes are
the log's, which the merge reads itself (``commits``) and refuses a part that places them
otherwise, so no part can change or move the commits the map is checked against.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable
from dataclasses import astuple
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared.audit.entry_ranges import Scanned
from shared.audit.entry_rows import Kept
from shared.audit.findings import Finding
from shared.audit.map_feed import Feed, Segment
from shared.audit.state import Row, Summaries, summary

_STEPS = "I"  # unsigned, four bytes: a step between positions, modulo 2**32
_WRAP = 1 << 32
_LEAF = 32


class FeedUnreadable(ValueError):
    """A part's packed feed does not decode against its summaries (a fault of its writer)."""


def _little(steps: array[int]) -> array[int]:
    """The steps in little-endian order, whatever this machine's (written and read alike)."""
    if sys.byteorder != "little":
        steps.byteswap()
    return steps


def feed_packed(feed: Feed, latest: Summaries) -> list[tuple[Any, ...]]:
    """A range's feed as plain values for ``marshal``, each version that is its entity's
    summary in ``latest`` (same index, kind, number and status) as a step and a leaf."""
    position = {entity_id: at for at, entity_id in enumerate(latest)}
    segments = []
    for segment in feed.segments:
        steps, leaves, whole = array(_STEPS), [], {}
        last = -1
        for entity_id, version in segment.versions.items():
            idx, kind, number, leaf, status = version
            at = position.get(entity_id, -1)
            known = latest[entity_id] if at >= 0 else None
            if (
                known is not None
                and (known.log_index, known.kind, known.version, known.status)
                == (idx, kind, number, status)
                and len(leaf) == _LEAF
            ):
                steps.append((at - last) % _WRAP)
                leaves.append(leaf)
                last = at
            else:
                whole[entity_id] = version
        commit = None if segment.commit is None else segment.commit[0]
        segments.append(
            (_little(steps).tobytes(), b"".join(leaves), whole, segment.certificates,
             list(segment.others), commit)
        )  # fmt: skip
    return segments


def commits_of(segments: Iterable[list[tuple[Any, ...]]]) -> list[int]:
    """The commit indices that packed feeds name, in order."""
    return [s[5] for feed in segments for s in feed if s[5] is not None]


def feed_unpacked(
    segments: list[tuple[Any, ...]], latest: Summaries, bodies: dict[int, bytes]
) -> Feed:
    """A range's feed from ``feed_packed`` values and its summaries, each commit with the bytes
    the log holds at its index (``bodies``, read by the merge)."""
    order = list(latest)
    kinds: dict[str, str] = {}  # one string a kind, as ``map_feed`` keeps them
    feed = Feed()
    feed.segments = []
    for steps_bytes, leaves, whole, certificates, others, commit in segments:
        steps = array(_STEPS)
        steps.frombytes(steps_bytes)
        if len(leaves) != _LEAF * len(steps):
            raise FeedUnreadable(f"{len(steps)} versions but {len(leaves)} bytes of leaves")
        versions: dict[str, Any] = {}
        at = -1
        try:
            for n, step in enumerate(_little(steps)):
                at = (at + step) % _WRAP
                entity_id = order[at]
                known = latest[entity_id]
                versions[entity_id] = (
                    known.log_index, kinds.setdefault(known.kind, known.kind), known.version,
                    leaves[_LEAF * n : _LEAF * n + _LEAF], known.status,
                )  # fmt: skip
        except IndexError:
            raise FeedUnreadable(f"a version at position {at} of {len(order)}") from None
        versions.update(whole)
        if commit is not None and commit not in bodies:
            raise FeedUnreadable(f"a map commit at {commit}, where the log holds none")
        made = None if commit is None else (commit, bodies[commit])
        feed.segments.append(Segment(versions, dict(certificates), set(others), made))
    return feed


def commits(conn: Connection, size: int) -> dict[int, bytes]:
    """The log's map commits below ``size`` by index, their bytes as stored (what the
    entries pass of a one-process audit hands the map pass)."""
    rows = conn.execute(
        text(
            "SELECT idx, body FROM log_entries WHERE tenant_id = current_setting('plant.tenant') "
            "AND entry_type = 'map_commit' AND idx < :size ORDER BY idx"
        ),
        {"size": size},
    ).all()
    return {int(idx): bytes(body) for idx, body in rows}


def listed(indices: Any) -> str:
    """Commit indices for a refusal: a few of them, and how many."""
    if not isinstance(indices, list):
        return repr(indices)[:80]
    shown = ", ".join(map(str, indices[:4])) + (", ..." if len(indices) > 4 else "")
    return f"[{shown}] ({len(indices)})"


def packed(part: Scanned) -> tuple[Any, ...]:
    """A scanned range as plain values (``marshal`` takes no classes); its leaves are left
    out: its subtrees stand for them, its ranges being aligned (``parts.ranges``). Its map feed
    last, packed against its summaries (``feed_packed``)."""
    kept, feed = part.kept, part.feed
    assert feed is not None  # a part's ranges are scanned with their feed (``write``)
    return (
        part.low, part.high, part.intact, part.subtrees,
        [astuple(f) for f in part.findings],
        [astuple(r) for r in kept.rows],
        [(astuple(r), leaf) for r, leaf in kept.mismatched],
        kept.moved_from,
        {k: tuple(v) for k, v in part.latest.items()},
        part.opening, part.irregular, part.rows_read, part.entries_verified,
        feed_packed(feed, part.latest),
    )  # fmt: skip


def unpacked(values: tuple[Any, ...], bodies: dict[int, bytes]) -> Scanned:
    """A scanned range from ``packed`` values, its map commits' bytes from ``bodies``."""
    low, high, intact, subtrees, findings, rows, mismatched, moved, latest = values[:9]
    opening, irregular, rows_read, entries_verified, feed = values[9:]
    kept = Kept([Row(*r) for r in rows], [(Row(*r), leaf) for r, leaf in mismatched], dict(moved))
    summaries = {k: summary(v) for k, v in latest.items()}
    return Scanned(
        low, high, intact, b"", [tuple(s) for s in subtrees],
        [Finding(*f) for f in findings], kept, summaries, opening, irregular, rows_read,
        entries_verified, feed_unpacked(feed, summaries, bodies),
    )  # fmt: skip
