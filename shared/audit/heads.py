"""The heads pass: each entity's head repeats what its current version says, and points at
it. A head whose version the entries pass read is compared with that version's ``Summary``
(those that would find nothing left out first, in C: ``plain_heads``); the others with the
ledger read again. After an entries pass in the workers, they check the
heads too, range by range of first index (``check_heads``), and the audit takes what they
found in the order the heads were read (``_take``), so both find the same in the same order.
What the current versions need of the rules is gathered here for ``rules.checked``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from shared.audit import plain_heads, reads, rules, versions
from shared.audit.findings import Finding
from shared.audit.state import AuditState, Summaries, Summary, packed, related, unpacked
from shared.audit.workers import Workers
from shared.integrity import canonical
from shared.storage import copyread, tree
from shared.storage.engine import database

# Every column of a head the ledger determines (created_at and updated_at aside: request
# times, not part of what a version says about its entity).
_HEADS = (
    "SELECT version, log_index, first_index, CAST(entity_id AS text), kind, status, name, "
    "category, unique_key FROM entity_heads WHERE tenant_id = current_setting('plant.tenant')"
)
_HEAD_COLUMNS = (
    copyread.INT4,
    copyread.INT8,
    copyread.INT8,
    copyread.raw(36),
    copyread.TEXT,
    copyread.TEXT,
    copyread.TEXT,
    copyread.TEXT,
    copyread.TEXT,
)
# A head as read: (version, log_index, first_index, entity id, kind, status, name, category,
# unique_key); the entity id is bytes as COPY reads it, text once set aside
_Head = tuple[int, int, int | None, str, str, str, str, str | None, str | None]
# The columns a head repeats from the ledger, in the order _said and the checks use
_HEAD_FIELDS = ("version", "kind", "status", "name", "category", "first_index", "unique_key")

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


def _shown(value: Any, limit: int = 80) -> str:
    """A column's value in a finding's text, cut short: a rewritten head column may be any
    length."""
    text_ = str(value)
    return text_ if len(text_) <= limit else text_[:limit] + "..."


def _said(head: tuple[Any, ...]) -> tuple[Any, ...]:
    """A head's ``_HEAD_FIELDS``, from the head as read."""
    return head[0], head[4], head[5], head[6], head[7], head[2], head[8]


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


def _head(
    state: AuditState,
    head: tuple[Any, ...],
    gathered: rules.Rules | rules.RuleCalls,
    uncovered: list[_Head],
    first_unread: list[tuple[_Head, Summary]],
) -> None:
    """One head as read: checked against the summary of the version it points at, or set
    aside for what needs the ledger again (``uncovered``, ``first_unread``)."""
    log_index = head[1]
    if log_index in state.reported:
        return
    entity_id = head[3].decode()
    known = state.latest.get(entity_id)
    if known is None or known.log_index != log_index:
        uncovered.append((*head[:3], entity_id, *head[4:]))
        return
    if known.first is None:
        first_unread.append(((*head[:3], entity_id, *head[4:]), known))
    else:
        _against_summary(state, entity_id, head, known, known.first)
    if known.relations is not None or entity_id in gathered.wanted:
        gathered.current(entity_id, known.kind, head[5], known.version, known.relations)


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


def _created(state: AuditState, start: int, end: int) -> Iterator[list[tuple[Any, ...]]]:
    """Heads whose first index is in [start, end): one statement per ``copyread.RANGE``
    indexes (each inside the timeout, reading the heap in the order it was written)."""
    for low in range(start, end, copyread.RANGE):
        high = min(end, low + copyread.RANGE)
        yield from copyread.copy_batches(
            state.conn,
            _HEADS + f" AND first_index >= {copyread.int_literal(low)} "
            f"AND first_index < {copyread.int_literal(high)}",
            _HEAD_COLUMNS,
        )


def _outside(state: AuditState, size: int) -> Iterator[list[tuple[Any, ...]]]:
    """Heads whose first index is outside a log of ``size`` entries (NULL, negative or past
    it): never written by the registry, so found and checked all the same."""
    yield from copyread.copy_batches(
        state.conn,
        _HEADS + " AND (first_index IS NULL OR first_index < 0 "
        f"OR first_index >= {copyread.int_literal(size)})",
        _HEAD_COLUMNS,
    )


def _some(
    state: AuditState, entity_ids: set[str], created_from: int | None
) -> Iterator[list[tuple[Any, ...]]]:
    """The heads of ``entity_ids``, plus, given ``created_from``, those created from it on
    and any outside the log (as a full audit reads them); the ids not found there (older
    entities, or a head whose first index was rewritten) by id, ``reads.by_ids``."""
    seen: set[bytes] = set()
    if created_from is not None:
        size = tree.log_size(state.conn)
        for batch in chain(_created(state, created_from, size), _outside(state, size)):
            seen.update(head[3] for head in batch)
            yield batch
    rest = [i for i in entity_ids if i.encode() not in seen]
    found = reads.by_ids(state, _HEADS + " AND entity_id = ANY(CAST(:ids AS uuid[]))", rest)
    yield [(*r[:3], r[3].encode(), *r[4:]) for r in found]


def _against_summary(
    state: AuditState, entity_id: str, head: tuple[Any, ...], known: Summary, first: int | None
) -> None:
    """A head pointing at the version this pass checked: each column it repeats must say
    what that version's bytes say, and its first index where version 1 is (``first``)."""
    logged = (
        known.version, known.kind, known.status, known.name, known.category, first,
        versions.expected_key(known.kind, known.name, known.relations),
    )  # fmt: skip
    said = _said(head)
    if said != logged:
        _fields(state, (entity_id, known.kind, known.version, head[1]), said, logged)


def _uncovered(state: AuditState, uncovered: list[_Head], gathered: rules.Rules) -> None:
    """Heads the entries pass's summaries cannot vouch for: read the ledger again."""
    ids = {u[3] for u in uncovered}
    stored = _versions_at_heads(state, ids)
    bounds = _version_bounds(state, ids) if ids else {}
    for head in uncovered:
        version, log_index, _, entity_id, kind, status = head[:6]
        e_version, body, e_type = stored.get(entity_id, (None, None, None))
        logged: tuple[Any, ...] | None = None
        if body is not None and e_type == "version" and e_version == version:
            try:
                doc = canonical.read(body)
                identity = doc["identity"]
                relations = versions.relations(identity["entity_type"], doc["relationships"])
                logged = (
                    identity["id"],
                    identity["entity_type"],
                    doc["lifecycle"]["status"],
                    identity["name"],
                    doc["metadata"].get("category"),
                )
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # reported as altered by the entry check
        if logged is None or logged[0] != entity_id:  # nothing there, or another entity
            state.add(
                "altered",
                "the entity's head does not point at its current version",
                section="entity_heads",
                field="log_index",
                entity_type=kind,
                entity_id=entity_id,
                version=version,
                log_index=log_index,
            )
            continue
        _, logged_kind, logged_status, logged_name, logged_category = logged
        latest, first = bounds.get(entity_id, (None, None))
        if latest is not None and latest > version:
            _behind(state, latest, logged_kind, entity_id, version, log_index)
        logged_key = versions.expected_key(logged_kind, logged_name, relations)
        _fields(
            state,
            (entity_id, logged_kind, version, log_index),
            _said(head),
            (version, logged_kind, logged_status, logged_name, logged_category, first, logged_key),
        )
        gathered.current(entity_id, logged_kind, status, version, relations)


def _behind(
    state: AuditState, latest: int, kind: str, entity_id: str, version: int, log_index: int
) -> None:
    """A head at an older version than the ledger's newest: the head was moved back (what
    the head row says is named, not the genuine newer versions)."""
    state.add(
        "rollback",
        f"the head is at version {version} but the ledger holds version {latest}",
        section="entity_heads",
        field="version",
        entity_type=kind,
        entity_id=entity_id,
        version=version,
        log_index=log_index,
        extra={"ledger_version": latest},
    )


def _fields(
    state: AuditState,
    where: tuple[str, str, int, int],
    said: tuple[Any, ...],
    logged: tuple[Any, ...],
) -> None:
    """Each of a head's ``_HEAD_FIELDS`` that disagrees with the version it points at:
    ``said`` by the head, ``logged`` by the ledger; ``where`` is that version's entity id,
    kind, version and log index."""
    entity_id, kind, version, log_index = where
    for name, head_value, value in zip(_HEAD_FIELDS, said, logged, strict=True):
        if head_value != value:
            state.add(
                "altered",
                f"the head says {name} {_shown(head_value)}, the ledger says {_shown(value)}",
                section="entity_heads",
                field=name,
                entity_type=kind,
                entity_id=entity_id,
                version=version,
                log_index=log_index,
            )


def _versions_at_heads(
    state: AuditState, entity_ids: set[str]
) -> dict[str, tuple[int, bytes, str]]:
    """(version, body, entry type) of the entry each head points at."""
    rows = reads.by_ids(
        state,
        "SELECT CAST(h.entity_id AS text), e.version, e.body, e.entry_type "
        "FROM entity_heads h JOIN log_entries e "
        "ON e.tenant_id = h.tenant_id AND e.idx = h.log_index "
        "WHERE h.tenant_id = current_setting('plant.tenant') "
        "AND h.entity_id = ANY(CAST(:ids AS uuid[]))",
        entity_ids,
    )
    state.rows_read += len(rows)
    return {r[0]: (int(r[1]), bytes(r[2]), r[3]) for r in rows}


def _version_bounds(state: AuditState, entity_ids: set[str]) -> dict[str, tuple[int, int | None]]:
    """Per entity, its newest version number in the ledger and the index of its version 1
    (None if there is none)."""
    rows = reads.by_ids(
        state,
        "SELECT CAST(entity_id AS text), max(version), min(idx) FILTER (WHERE version = 1) "
        "FROM log_entries WHERE tenant_id = current_setting('plant.tenant') "
        "AND entry_type = 'version' AND entity_id = ANY(CAST(:ids AS uuid[])) "
        "GROUP BY entity_id",
        entity_ids,
    )
    state.rows_read += len(rows)
    return {r[0]: (int(r[1]), None if r[2] is None else int(r[2])) for r in rows}


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
