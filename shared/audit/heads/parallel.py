"""The heads pass (``checked``): after an entries pass in the workers, a full audit's heads
are checked there too, range by range (``check_heads``), and taken in the order they were
read; the rest are checked here."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from shared.audit import plain_heads, rules
from shared.audit.findings import Finding
from shared.audit.heads.one_head import _against_summary, _head, _uncovered
from shared.audit.heads.reading import _created, _Head, _outside, _some, _version_bounds
from shared.audit.state import AuditState, Summaries, Summary, packed, related, unpacked
from shared.audit.workers import Workers
from shared.storage import copyread, tree
from shared.storage.engine import database

# What checking one head did, in the order the heads were read: (head as read, its log
# index, [], [], []) for a head left to the audit, or (None, log index, findings, heads to
# read again, rule calls) for one checked in a worker that did anything
Outcome = tuple[
    tuple[Any, ...] | None, int, list[Finding], list[tuple[Any, ...]], list[tuple[Any, ...]]
]


@dataclass
class HeadsChecked:
    """What checking the heads of one range of first indexes found, for the audit to take
    in the order the heads were read."""

    low: int
    high: int
    outcomes: list[Outcome] = field(default_factory=list)
    rows_read: int = 0


class Packed:
    """One range's summaries on their way to a worker: those of ``ids`` in ``latest``, picked
    and packed only when its task is sent (the pool sends a few ahead), so the audit keeps no
    copy of them. An entity read in other ranges too (``shared``) goes back unchecked
    whatever its summary, so the newest one, the audit's, serves as well as the range's."""

    def __init__(self, latest: Summaries, ids: Iterable[str]) -> None:
        self.latest, self.ids = latest, ids

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as the packed summaries, made now that the task is sent."""
        latest = self.latest
        return _unpack, (packed({i: dict.__getitem__(latest, i) for i in self.ids}),)


def _unpack(data: bytes) -> Packed:
    """The worker's side of ``Packed.__reduce__``: each summary made once, here."""
    return Packed(dict(unpacked(data)[0].items()), ())


def checked(
    state: AuditState, entity_ids: set[str] | None, created_from: int | None = None
) -> None:
    """Heads agree with the latest version; current versions still satisfy the rules.

    ``entity_ids`` None: every head (a full audit); else those entities' heads, and, given
    ``created_from``, every head created from that log index on (the entities an incremental
    range created: read by first index, not looked up one by one) and any whose first index
    is outside the log. A head whose version 1 lies before the range is compared with the
    ledger's index of it.
    """
    gathered = rules.Rules(rules.referenced(related(state.latest)))
    uncovered: list[_Head] = []
    first_unread: list[tuple[_Head, Summary]] = []  # version 1 before the range
    heads_rows: Iterable[list[tuple[Any, ...]]]
    if entity_ids is None:
        size = tree.log_size(state.conn)
        done = 0
        if state.range_summaries:
            done = _in_workers(state, size, gathered, uncovered, first_unread)
        # by ranges of first index, then any outside the log: no ORDER BY, the two
        # partition the heads whatever their order
        heads_rows = chain(_created(state, done, size), _outside(state, size))
    elif not entity_ids:
        return
    else:
        heads_rows = _some(state, entity_ids, created_from)
    for batch in heads_rows:
        state.rows_read += len(batch)
        for head in plain_heads.to_check(batch, state.latest, gathered.wanted, frozenset()):
            _head(state, head, gathered, uncovered, first_unread)
    if first_unread:  # amended in the range: where version 1 is, from the ledger
        bounds = _version_bounds(state, {head[3] for head, _ in first_unread})
        for head, known in first_unread:
            _against_summary(state, head[3], head, known, bounds.get(head[3], (None, None))[1])
    _uncovered(state, uncovered, gathered)
    rules.checked(state, gathered)


def _in_workers(
    state: AuditState,
    size: int,
    gathered: rules.Rules,
    uncovered: list[_Head],
    first_unread: list[tuple[_Head, Summary]],
) -> int:
    """The heads of the ranges the entries pass scanned in the workers, checked there
    against each range's summaries and taken in here in the order they were read (the
    ranges as ``_created`` makes them). Returns the first index not covered."""
    step, summaries = copyread.RANGE, state.range_summaries or []
    ranges = [
        (low, min(low + step, size), Packed(state.latest, ids))
        for low, ids in zip(range(0, size, step), summaries, strict=False)
    ]
    workers = state.pool_for(len(ranges), size)
    if workers is None:
        return 0
    parts = heads_checked(
        workers,
        state.tenant,
        state.snapshot,
        ranges,
        state.shared,
        gathered.wanted,
        set(state.reported),
    )
    for part in parts:
        _take(state, part, gathered, uncovered, first_unread)
    return ranges[-1][1]


def _check_range(
    state: AuditState, low: int, high: int, shared: set[str], wanted: set[str]
) -> HeadsChecked:
    """Heads whose first index is in [low, high), checked against ``state.latest`` (the
    summaries of one range) in a worker. A head is checked here only when that range holds
    its entity's version 1 and no other range holds the entity (``shared``); any other is
    handed back as read. Every outcome names the head's log index: the audit drops one that
    an earlier range's finding has reported meanwhile, as it would have skipped the head."""
    out = HeadsChecked(low, high)
    latest, findings = state.latest, state.findings
    calls = rules.RuleCalls(wanted)
    uncovered: list[_Head] = []
    first_unread: list[tuple[_Head, Summary]] = []  # stays empty: such heads go back
    for batch in _created(state, low, high):
        out.rows_read += len(batch)
        for head in plain_heads.to_check(batch, latest, wanted, shared):  # the rest find nothing
            entity_id = head[3].decode()
            known = latest.get(entity_id)
            if known is None or known.first is None or entity_id in shared:
                out.outcomes.append((head, head[1], [], [], []))
                continue
            found = len(findings)
            _head(state, head, calls, uncovered, first_unread)
            if len(findings) > found or uncovered or calls.made:
                out.outcomes.append((None, head[1], findings[found:], uncovered, calls.made))
                uncovered, calls.made = [], []
    return out


def _take(
    state: AuditState,
    part: HeadsChecked,
    gathered: rules.Rules,
    uncovered: list[_Head],
    first_unread: list[tuple[_Head, Summary]],
) -> None:
    """A range of heads checked in a worker, taken in as if each head were checked here in
    turn: a head handed back is checked now; an outcome whose head would have been skipped,
    its log index reported since the worker started, is dropped."""
    state.rows_read += part.rows_read
    for head, log_index, findings, more, calls in part.outcomes:
        if head is not None:
            _head(state, head, gathered, uncovered, first_unread)
            continue
        if log_index in state.reported:
            continue
        for finding in findings:
            state.note(finding)
        uncovered.extend(more)
        for call in calls:
            gathered.current(*call)


def check_heads(
    tenant: str,
    snapshot: str,
    low: int,
    high: int,
    summaries: Packed,
    shared: set[str],
    wanted: set[str],
    reported: set[int],
) -> HeadsChecked:
    """Check the heads whose first index is in [low, high) against the summaries of the
    entries scanned from ``low`` (a worker's task: module level, so a spawned process can
    import it). ``shared``: entities read in other ranges too, whose newest summary only the
    audit has; ``wanted``: ids the rules need the current version of; ``reported``: indices
    already named."""
    with database().transaction(tenant, shared_snapshot=snapshot) as conn:
        state = AuditState(conn, tenant, latest=summaries.latest, reported=reported)
        return _check_range(state, low, high, shared, wanted)


def heads_checked(
    workers: Workers,
    tenant: str,
    snapshot: str,
    ranges: Sequence[tuple[int, int, Packed]],
    shared: set[str],
    wanted: set[str],
    reported: set[int],
) -> Iterator[HeadsChecked]:
    """Each range's heads checked (``check_heads``), in the order given: (low, high, the
    summaries of the entries scanned from low)."""
    return workers.run(
        check_heads,
        [
            (tenant, snapshot, low, high, summaries, shared, wanted, reported)
            for low, high, summaries in ranges
        ],
    )
