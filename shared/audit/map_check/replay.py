"""The heads as the log builds them, fed by the entries pass in log order (``Replay``), and
what is wrong with a map commit against the root they give."""

from __future__ import annotations

from typing import Any

from shared.audit import map_feed
from shared.audit.state import AuditState
from shared.integrity import heads_map, map_memory

_PART = 1 << 16  # heads a commit applies at a time


class Replay:
    """The heads as the log builds them from ``since`` on, and the commits to check: in a
    full audit (``since`` 0) against an in-memory map, as they come; in an incremental
    audit, kept for ``incremental``."""

    def __init__(self, since: int) -> None:
        self.full = since == 0
        # entity id -> its newest version (full: ``map_feed.settled``, None where no value)
        self.versions: dict[str, Any] = {}
        self.certificates: dict[str, int] = {}  # entity id -> its newest certificate
        self.changed: set[str] = set()  # since the last commit
        self.memory = map_memory.new()  # full: the map as the log builds it
        self.segments: list[map_feed.Segment] = []  # incremental: what changed, in order
        self.last: int | None = None  # the last commit's index
        # full: the commits found wrong while the entries pass runs, named in the map pass
        self.found: list[tuple[int, str, str | None]] = []

    def take(self, feed: map_feed.Feed) -> None:
        """A range's entries, after those taken before."""
        for segment in feed.segments:
            if not self.full:
                self._keep(segment)
                continue
            map_feed.settle(segment.versions)
            self.versions.update(segment.versions)
            self.certificates.update(segment.certificates)
            self.changed.update(segment.versions, segment.certificates, segment.others)
            if segment.commit is not None:
                self.commit(*segment.commit)

    def _keep(self, segment: map_feed.Segment) -> None:
        """A segment kept in order; one a range left open goes on in the next range's."""
        last = self.segments[-1] if self.segments else None
        if last is None or last.commit is not None:
            self.segments.append(segment)
        else:
            last.versions.update(segment.versions)
            last.certificates.update(segment.certificates)
            last.others |= segment.others
            last.commit = segment.commit
        if segment.commit is not None:
            self.last = segment.commit[0]

    def updates(self, entities: set[str]) -> dict[bytes, tuple[str, bytes]]:
        """The changed heads: key -> (entity id, value)."""
        out = {}
        versions, certificates = self.versions, self.certificates
        for entity_id in entities:
            version = versions.get(entity_id)
            if version is None:
                continue
            value = map_feed.head_value(version, entity_id, certificates.get(entity_id))
            if value is not None:
                out[map_feed.entity_key(entity_id)] = (entity_id, value)
        return out

    def commit(self, idx: int, body: bytes) -> None:
        """Apply the heads changed since the last commit, ``_PART`` at a time (a seeded
        log's first commit changes a million: their records whole were ~75 MB of the peak
        RSS); compare the roots."""
        self.last = idx
        changed, self.changed = list(self.changed), set()
        named: list[str] = []
        for at in range(0, max(len(changed), 1), _PART):
            records, more = map_feed.head_records(
                self.versions, self.certificates, changed[at : at + _PART]
            )
            named += more
            if at + _PART < len(changed):
                self.memory.put(records)
        wrong = compare(idx, body, self.memory.update(records), named)
        if wrong is not None:
            self.found.append((idx, *wrong))


def compare(idx: int, body: bytes, root: bytes, named: list[str]) -> tuple[str, str | None] | None:
    """What is wrong with the commit at ``idx`` against the root the log gives (``named``:
    the entities whose heads changed since the commit before, one of which is named when it
    alone changed): (detail, entity id or None), or None."""
    try:
        commit = heads_map.decode_commit(body)
    except heads_map.MalformedCommit as exc:
        return f"the map commit at {idx} is malformed: {exc}", None
    if commit.log_size != idx:
        return f"the map commit at {idx} says it covers {commit.log_size}", None
    if commit.map_root != root:
        who = named[0] if len(named) == 1 else None
        return (
            f"the map commit at {idx} holds another root than the heads the log gives "
            f"({len(named)} changed since the commit before)",
            who,
        )
    return None


def invalid(state: AuditState, idx: int | None, detail: str, entity_id: str | None = None) -> None:
    """A ``map_invalid`` finding at a commit's index, naming the entity when known."""
    state.add("map_invalid", detail, entity_id=entity_id, log_index=idx)
