"""What the passes of one audit share: its transaction, what it has found so far and what
the entries pass has read of each entity. One explicit object, handed to every pass and built
by each worker's task from what it is sent, so that no pass sets another's attributes."""

from __future__ import annotations

import functools
import marshal
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared.audit.findings import Finding
from shared.audit.map_feed import Feed
from shared.audit.workers import Workers
from shared.config import settings
from shared.tlog import keys


class Summary(NamedTuple):
    """An entity's newest version read by the entries pass: all the chains, heads and rules
    need of it (one per entity, kept for the whole audit)."""

    log_index: int
    version: int
    digest: bytes
    status: str
    kind: str
    relations: dict[str, Any] | None  # relationship fields, None when all are null
    name: str
    category: str | None
    first: int | None  # the index of version 1, None when this pass did not read it


# A Summary from a plain tuple, in C: as fast as the tuple itself (a million are made a full
# audit), where ``Summary(...)`` costs twice as much.
summary = functools.partial(tuple.__new__, Summary)

Summaries = dict[str, Summary]  # entity id -> its Summary


def _held(fields: Any) -> Summary:
    """A summary as ``Held`` keeps it (the ``marshal`` bytes of its fields, or its fields)."""
    return summary(marshal.loads(fields) if type(fields) is bytes else fields)  # noqa: S302


def _compact(fields: Any) -> Any:
    """A summary as it travels and as ``Held`` keeps it: one without relations as the
    ``marshal`` bytes of its fields, any other as its fields."""
    if type(fields) is bytes:
        return fields
    return marshal.dumps(tuple(fields)) if fields[5] is None else tuple(fields)


class Held(dict[str, Summary]):
    """Summaries as the audit holds those its workers send, a million at a full audit's peak
    RSS: each without relations as the ``marshal`` bytes of its fields (~120 bytes, where a
    Summary and its own digest, index and name objects take ~300), made a Summary when read.
    ``dict.update`` copies what one holds as it is."""

    def __getitem__(self, key: str) -> Summary:
        return _held(dict.__getitem__(self, key))

    def get(self, key: str, default: Any = None) -> Any:
        found = dict.get(self, key)
        return default if found is None else _held(found)

    def values(self) -> Iterator[Summary]:  # type: ignore[override]
        return map(_held, dict.values(self))

    def items(self) -> Iterator[tuple[str, Summary]]:  # type: ignore[override]
        return ((key, _held(fields)) for key, fields in dict.items(self))


def related(latest: Summaries) -> Iterable[Summary]:
    """The summaries whose relations may name other entities: of a ``Held``, those it keeps
    as fields (the others have none), none of them made a Summary for nothing."""
    if isinstance(latest, Held):
        return map(summary, (f for f in dict.values(latest) if type(f) is not bytes))
    return latest.values()


def packed(latest: Summaries, more: Any = None) -> bytes:
    """Summaries on their way to or from a worker, as ``marshal`` bytes (about 3x faster than
    pickle), each as ``Held`` keeps it. ``more``: plain values sent in the same bytes, so that
    an object both hold (an entity id) arrives as one object, as ``marshal`` writes an object
    held twice once."""
    return marshal.dumps((list(latest), list(map(_compact, dict.values(latest))), more))


def unpacked(data: bytes) -> tuple[Held, Any]:
    """Summaries as ``packed`` sent them, ``Held``, and what was sent with them."""
    ids, fields, more = marshal.loads(data)  # noqa: S302 (the audit's own process or worker)
    return Held(zip(ids, fields, strict=True)), more


# entity id -> (version, prev_digest, log index, kind, findings before it) of the first
# version a range holds of it, unless that is a version 1 linking to nothing (all a new
# entity's first needs); the count places what linking it finds among the range's findings
Opening = dict[str, tuple[int, bytes | None, int, str, int]]


class Parts(Protocol):
    """The ranges of a full audit that other processes scanned (``shared.audit.parts``)."""

    def covering(self, size: int) -> int:
        """The end of the ranges the parts cover from index 0 of a log of ``size`` checked
        entries (0: none to take)."""
        ...

    def scanned(self) -> Iterator[Any]:
        """Each range's ``entry_ranges.Scanned``, in log order."""
        ...

    def receipts(self, state: AuditState) -> int:
        """The receipts pass's findings over the ranges taken, noted; returns where the pass
        goes on by itself."""
        ...

    def summary(self) -> dict[str, Any]:
        """What the run's summary says of them."""
        ...


@dataclass(slots=True)
class Row:
    """A log entry as read; ``body`` is empty where the pass needs no bytes of it."""

    index: int
    entry_type: str
    kind: str
    entity_id: str
    version: int
    body: bytes
    digest: bytes
    leaf_hash: bytes
    prev_digest: bytes | None


@dataclass
class AuditState:
    """Findings for one tenant over one range of the log, and what the passes hand on."""

    conn: Connection
    tenant: str
    workers: Workers | None = None  # processes the long passes may be handed to
    findings: list[Finding] = field(default_factory=list)
    reported: set[int] = field(default_factory=set)  # indices already named by a finding
    # entity id -> the Summary of its newest version read so far
    latest: Summaries = field(default_factory=dict)
    # entities whose versions were not read in order, one after the other: their chains
    # are checked as a whole after the entries pass
    irregular: set[str] = field(default_factory=set)
    # while scanning one range for another process: the first version read of each entity,
    # whose link to the versions before the range that process checks
    opening: Opening | None = None
    # when the entries pass ran in workers from index 0: the ids of each range's summaries
    # (their summaries in ``latest``), for the heads pass to hand on; and the entities read in
    # several ranges
    range_summaries: list[list[str]] | None = None
    shared: set[str] = field(default_factory=set)
    parts: Parts | None = None  # a full audit merging parts: their ranges
    # while the entries pass feeds the map pass: what the map needs of the range being read
    map_feed: Feed | None = None
    rows_read: int = 0
    entries_verified: int = 0

    @functools.cached_property
    def keyring(self) -> keys.Keyring:
        """The tenant's verifiers, read once an audit."""
        return keys.keyring()

    @functools.cached_property
    def snapshot(self) -> str:
        """This transaction's snapshot, exported for the workers to read in."""
        return str(self.conn.execute(text("SELECT pg_export_snapshot()")).scalar_one())

    def pool_for(self, ranges: int, entries: int) -> Workers | None:
        """The workers a pass over this many ranges and entries is handed to, if any."""
        workers = self.workers
        if workers is None or workers.count < 2 or ranges < 2:
            return None
        return workers if entries >= settings().audit_parallel_from else None

    def add(self, kind: str, detail: str, **where: Any) -> None:
        """A finding at this tenant, noted in order."""
        self.note(Finding(kind, self.tenant, detail, **where))

    def note(self, finding: Finding) -> None:
        """A finding, in order. Its log index is then reported: the later passes name
        nothing more of that entry (a rule violation aside, which says nothing of the
        entry's bytes)."""
        self.findings.append(finding)
        if finding.log_index is not None and finding.kind != "rule_violation":
            self.reported.add(finding.log_index)
