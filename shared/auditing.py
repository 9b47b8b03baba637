"""Audits: prove that nothing in a tenant's log was altered, deleted, inserted or re-ordered
since it was checkpointed, or name exactly what was.

A run seals a new checkpoint, checks every checkpoint signature and the anchor store, then
recomputes the leaf of every entry in range from its stored bytes and rebuilds the tree root
from them (with the stored subtree hashes for the part verified before, on an incremental run),
compares the result with the signed checkpoint, and checks per-entity chains, heads,
certificates and rules. Work and reads are proportional to the range plus O(log n).
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from shared import scan_pool, tlog
from shared.config import settings
from shared.errors import (
    IntegrityViolation,
    NotFound,
    ValidationFailed,
)
from shared.findings import Finding
from shared.integrity import canonical, digests, dsse, merkle, note
from shared.registry import documents
from shared.rules import four_eyes, path_params, query_params
from shared.rules.inputs import unstorable_text
from shared.rules.kinds import KINDS, kind_for_type, resolve_kind
from shared.rules.relations import (
    Ref,
    check_relations,
    referenced_ids,
    uncertified_uses,
    unique_key,
)
from shared.security.principal import Principal
from shared.storage import copyread, heads, tree
from shared.storage.engine import database
from shared.tlog import anchors, keys

MODES = ("incremental", "full")
STALE_RUN = "15 minutes"
RUNS_PAGE = 20
MAX_RUNS_PAGE = 100


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
# unique_key)
_Head = tuple[int, int, int | None, str, str, str, str, str | None, str | None]
# The columns a head repeats from the ledger, in the order _said and the checks use
_HEAD_FIELDS = ("version", "kind", "status", "name", "category", "first_index", "unique_key")


def _shown(value: Any, limit: int = 80) -> str:
    """A column's value in a finding's text, cut short: a rewritten head column may be
    any length."""
    text_ = str(value)
    return text_ if len(text_) <= limit else text_[:limit] + "..."


def _said(head: tuple[Any, ...]) -> tuple[Any, ...]:
    """A head's ``_HEAD_FIELDS``, from the head as read."""
    return head[0], head[4], head[5], head[6], head[7], head[2], head[8]


# Per kind, its client fields kept in the relationships section: the only ones the
# cross-entity rules (check_relations) read. A derived one (a team's agents, which older
# team versions may hold) records nothing, so no rule reads it (shared.registry.membership).
_RELATION_FIELDS = {
    kind.type: tuple(f.name for f in kind.fields if f.section == "relationships" and not f.derived)
    for kind in KINDS.values()
}


class _Identity(msgspec.Struct):
    id: str
    entity_type: str
    name: str


class _Versioning(msgspec.Struct):
    version: int


class _Lifecycle(msgspec.Struct):
    status: str


class _Metadata(msgspec.Struct):
    category: str | None = None  # skills only


class _Checked(msgspec.Struct):
    """What the entries pass reads of a version's bytes: the fields its columns and its
    head repeat, and its relationships. The rest is parsed as JSON (the bytes must be valid) but
    not built into objects: a third of the cost of parsing the whole document."""

    identity: _Identity
    versioning: _Versioning
    lifecycle: _Lifecycle
    metadata: _Metadata
    relationships: dict[str, Any]


_read_checked = msgspec.json.Decoder(_Checked).decode  # raises a ValueError


def _relations(entity_type: str, relationships: dict[str, Any]) -> dict[str, Any] | None:
    """A version's relationship fields, or None when all are null: check_relations finds
    nothing to check then (no reference, no required skills), so none is kept."""
    for value in relationships.values():
        if value is not None:
            break
    else:
        return None
    fields = {name: relationships.get(name) for name in _RELATION_FIELDS.get(entity_type, ())}
    return fields if any(v is not None for v in fields.values()) else None


def _unique_key(entity_type: str, name: Any, relations: dict[str, Any] | None) -> str | None:
    """The uniqueness key a head of this version must hold, derived as the registry derives
    it (from the name, or from relationship fields); None where the version cannot have one
    (a kind or fields no registry write produces: its head is then named as altered)."""
    try:
        return unique_key(kind_for_type(entity_type), {"name": name, **(relations or {})})
    except (KeyError, TypeError, AttributeError):
        return None


def _ids(entity_type: str, fields: dict[str, Any]) -> set[str]:
    kind = kind_for_type(entity_type)
    return referenced_ids(kind, fields)


def _referenced(summaries: Iterable[tuple[Any, ...]]) -> set[str]:
    """Every id the relationships of these version summaries name."""
    out: set[str] = set()
    for summary in summaries:
        if summary[5] is not None:
            out |= _ids(summary[4], summary[5])
    return out


class _Rules:
    """What the rules need of the current versions: a reference's type, status and fields
    (only of the ``wanted`` ids), and the versions with relationships to check."""

    def __init__(self, wanted: set[str]) -> None:
        self.wanted = wanted
        self.refs: dict[str, Ref] = {}
        self.checks: list[tuple[str, str, str, int, dict[str, Any]]] = []

    def current(
        self,
        entity_id: str,
        kind: str,
        status: str,
        version: int,
        relations: dict[str, Any] | None,
    ) -> None:
        if entity_id in self.wanted:
            self.refs[entity_id] = Ref(entity_id, kind, status, relations or {})
        if relations is not None and status != "deprecated":
            self.checks.append((entity_id, kind, status, version, relations))


class _RuleCalls:
    """``_Rules.current`` as a worker sees it: the calls made, for the audit to make again
    in order."""

    def __init__(self, wanted: set[str]) -> None:
        self.wanted = wanted
        self.made: list[tuple[Any, ...]] = []

    def current(self, *args: Any) -> None:
        self.made.append(args)


_BY_ID = 1000  # heads looked up by id per statement

# Write rules on a reference's status: checked when the version was written, and held
# afterwards only by certified versions (a reference leaving ``certified`` moves them too:
# ``shared.registry.dependents``); a draft may keep a skill that was suspended after it was written.
_STATUS_RULES = ("L1-REF-02", "L1-JOBROLE-03")

_NAMES: dict[str, str] = {}  # kinds, statuses, categories: shared by the summaries

# (index, version, digest, status, kind, relationship fields or None, name, category, index of
# version 1 or None when it was not read): a plain tuple, read by position in hot loops
_Summary = tuple[int, int, bytes, str, str, dict[str, Any] | None, str, str | None, int | None]


def _array(items: Iterable[str]) -> str:
    """A PostgreSQL array literal of ids (the text of uuid columns) or integers, sent as one
    text parameter: pg8000 would convert a list element by element. Kept in order, so that
    arrays unnested side by side stay aligned."""
    return "{" + ",".join(items) + "}"


def _digest_in(rows: list[Row], version: int) -> bytes | None:
    if version < 1:
        return None
    return next((r.digest for r in rows if r.version == version), None)


def _opt(value: Any) -> bytes | None:
    return bytes(value) if value is not None else None


@dataclass(slots=True)
class Row:
    index: int
    entry_type: str
    kind: str
    entity_id: str
    version: int
    body: bytes
    digest: bytes
    leaf_hash: bytes
    prev_digest: bytes | None


def _entity_rows(conn: Connection, entity_id: str) -> list[Row]:
    """Every entry (versions and certificates) of one entity, in log order, in one query."""
    result = conn.execute(
        text(
            "SELECT idx, entry_type, kind, CAST(entity_id AS text), version, body, digest, "
            "leaf_hash, prev_digest FROM log_entries "
            "WHERE tenant_id = current_setting('plant.tenant') "
            "AND entity_id = CAST(:id AS uuid) ORDER BY idx"
        ),
        {"id": entity_id},
    )
    return [
        Row(
            int(r[0]),
            r[1],
            r[2],
            r[3],
            int(r[4]),
            bytes(r[5]),
            bytes(r[6]),
            bytes(r[7]),
            bytes(r[8]) if r[8] is not None else None,
        )
        for r in result
    ]


class Auditor:
    """Collects findings for one tenant over one range of the log."""

    def __init__(
        self, conn: Connection, tenant: str, workers: scan_pool.Workers | None = None
    ) -> None:
        self.conn = conn
        self.tenant = tenant
        self.workers = workers  # processes the long passes may be handed to
        self.findings: list[Finding] = []
        self.rows_read = 0
        self.entries_verified = 0
        self.reported: set[int] = set()  # indices already named by a finding
        # entity id -> _Summary of its newest version read so far: all the chains, heads
        # and rules need of it
        self.latest: dict[str, _Summary] = {}
        # entities whose versions were not read in order, one after the other: their
        # chains are checked as a whole after the entries pass
        self.irregular: set[str] = set()
        # set while scanning one range for another process: the first version read of each
        # entity, whose link to the versions before the range that process checks
        self.opening: scan_pool.Opening | None = None
        # set when the entries pass ran in workers from index 0: each range's summaries, for
        # the heads pass to hand on; and the entities read in several ranges
        self.range_summaries: list[dict[str, _Summary]] | None = None
        self.shared: set[str] = set()

    @functools.cached_property
    def keyring(self) -> keys.Keyring:
        return keys.keyring()

    @functools.cached_property
    def snapshot(self) -> str:
        """This transaction's snapshot, exported for the workers to read in."""
        return str(self.conn.execute(text("SELECT pg_export_snapshot()")).scalar_one())

    def _pool_for(self, ranges: int, entries: int) -> scan_pool.Workers | None:
        """The workers a pass over this many ranges and entries is handed to, if any."""
        workers = self.workers
        if workers is None or workers.count < 2 or ranges < 2:
            return None
        return workers if entries >= settings().audit_parallel_from else None

    def add(self, kind: str, detail: str, **where: Any) -> None:
        self._note(Finding(kind, self.tenant, detail, **where))

    def _note(self, finding: Finding) -> None:
        self.findings.append(finding)
        if finding.log_index is not None and finding.kind != "rule_violation":
            self.reported.add(finding.log_index)

    # -- checkpoints ---------------------------------------------------------------------

    def checkpoints(self, since: int) -> tree.StoredCheckpoint | None:
        """Verify every checkpoint of size >= ``since``: signature, origin, stored columns,
        and consistency of each with the one before. Returns the latest valid one."""
        rows = self.conn.execute(
            text("SELECT size, root, note FROM checkpoints WHERE size >= :since ORDER BY size"),
            {"since": since},
        ).all()
        self.rows_read += len(rows)
        latest: tree.StoredCheckpoint | None = None
        previous: tree.StoredCheckpoint | None = None
        for size, root, text_ in rows:
            stored = tree.StoredCheckpoint(int(size), bytes(root), text_)
            try:
                body, _ = note.open_note(stored.note, list(self.keyring.verifiers))
                parsed = note.parse_checkpoint(body)
            except note.NoteError as exc:
                self.add(
                    "checkpoint_invalid",
                    f"checkpoint {stored.size} does not verify: {exc}",
                    extra={"checkpoint_size": stored.size},
                )
                continue
            if (parsed.origin, parsed.size, parsed.root) != (
                tlog.origin(self.tenant),
                stored.size,
                stored.root,
            ):
                self.add(
                    "checkpoint_invalid",
                    f"checkpoint {stored.size}'s signed text disagrees with its row",
                    extra={"checkpoint_size": stored.size},
                )
                continue
            if previous is not None and previous.size > 0:
                reader = tree.DbNodes(self.conn)
                proof = merkle.consistency_proof(reader, previous.size, stored.size)
                self.rows_read += reader.rows_read
                if not merkle.verify_consistency(
                    previous.size, stored.size, previous.root, stored.root, proof
                ):
                    self.add(
                        "checkpoint_invalid",
                        f"checkpoint {stored.size} is not consistent with {previous.size}",
                        extra={"checkpoint_size": stored.size},
                    )
            previous = latest = stored
        return latest

    def anchor(self, anchored: tuple[int, str] | None) -> None:
        """The snapshot's checkpoints against the anchor store's latest, read before it."""
        last = tree.latest_checkpoint(self.conn)
        try:
            tlog.check_anchored(self.conn, last, anchored)
        except IntegrityViolation as exc:
            self.add(
                "rollback", exc.detail, extra={"anchored_size": exc.extensions.get("anchored_size")}
            )

    # -- entries -------------------------------------------------------------------------

    def entries(
        self,
        start: int,
        checkpoint: tree.StoredCheckpoint,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Row]:
        """Recompute every leaf in [start, checkpoint.size) and rebuild the signed root.

        Each entry is hashed and parsed once; what is kept per entity is its newest
        version's summary (``self.latest``), for the chains, heads and rules; bytes are
        kept only of certificates and of entries that disagree with the tree, so memory
        does not grow with the bytes logged. Returns those kept rows.
        """
        size = checkpoint.size
        reader = tree.DbNodes(self.conn)
        builder = merkle.RootBuilder(reader, start)
        kept: list[Row] = []
        mismatched: list[tuple[Row, bytes]] = []
        moved_from: dict[bytes, int] = {}  # stored leaf -> index, where bytes and tree disagree
        step = copyread.RANGE
        ranges = [(low, min(low + step, size)) for low in range(start, size, step)]
        # each range's end and how it is taken in: scanned here, or merged from a worker
        steps: Iterator[tuple[int, Callable[..., bool]]]
        workers = self._pool_for(len(ranges), size - start)
        if workers is not None:
            self.range_summaries = [] if start == 0 else None
            parts = scan_pool.scanned(
                workers, self.tenant, self.snapshot, ranges, set(self.reported)
            )
            steps = ((part.high, functools.partial(self.merge, part)) for part in parts)
        else:
            steps = ((high, functools.partial(self._range, low, high)) for low, high in ranges)
        intact = True
        for high, take in steps:
            builds = builder if intact else None
            intact = take(builds, kept, mismatched, moved_from) and intact
            if progress:
                progress(high - start, size - start)
        self.classify(mismatched, moved_from)
        self.rows_read += reader.rows_read
        # The signed root, rebuilt from the bytes (plus subtrees verified by earlier runs).
        if intact and size and builder.root() != checkpoint.root and not mismatched:
            self.add(
                "checkpoint_invalid",
                f"the entries do not rebuild the root signed at size {size}",
                extra={"checkpoint_size": size},
            )
        return kept

    def scan(self, low: int, high: int, reported: set[int]) -> scan_pool.Scanned:
        """Entries [low, high) scanned for an audit in another process, which merges what
        is found (``merge``); ``reported`` are the indices it has already named."""
        self.reported = reported
        self.opening = {}
        leaves: list[bytes] = []
        kept: list[Row] = []
        mismatched: list[tuple[Row, bytes]] = []
        moved_from: dict[bytes, int] = {}
        intact = self._range(low, high, leaves, kept, mismatched, moved_from)
        own = merkle.RootBuilder(tree.DbNodes(self.conn), 0)
        own.extend(leaves)
        return scan_pool.Scanned(
            low,
            high,
            intact,
            b"".join(leaves),
            own.subtrees(),
            self.findings,
            kept,
            mismatched,
            moved_from,
            self.latest,
            self.opening,
            self.irregular,
            self.rows_read,
            self.entries_verified,
        )

    def merge(
        self,
        part: scan_pool.Scanned,
        builder: merkle.RootBuilder | None,
        kept: list[Row],
        mismatched: list[tuple[Row, bytes]],
        moved_from: dict[bytes, int],
    ) -> bool:
        """A range another process scanned, taken in as if read here, after the ranges
        before it: each entity's first version in it is linked to the newest read before
        (as ``_version`` links one read here), then its findings, rows and summaries join
        these. Returns what ``_range`` would have."""
        latest, irregular, findings = self.latest, self.irregular, part.findings
        done = 0
        for entity_id, (version, prev_digest, index, kind, position) in part.opening.items():
            for finding in findings[done:position]:  # those found before it, in order
                self._note(finding)
            done = position
            if entity_id not in irregular:
                self._link(kind, entity_id, version, prev_digest, index, latest.get(entity_id))
        for finding in findings[done:]:
            self._note(finding)
        # entities read before this range: a first version 1 in it follows nothing of theirs
        # (what ``_link`` makes of it), and the newer summary wins
        seen = part.latest.keys() & latest.keys()
        self.shared |= seen
        if self.range_summaries is not None:
            self.range_summaries.append(part.latest)
        newer = {}
        for entity_id in seen:
            if entity_id not in part.opening:
                irregular.add(entity_id)
            known, summary = latest[entity_id], part.latest[entity_id]
            newer[entity_id] = (*summary[:8], known[8]) if summary[1] > known[1] else known
        irregular |= part.irregular
        latest.update(part.latest)
        latest.update(newer)
        kept.extend(part.kept)
        mismatched.extend(part.mismatched)
        moved_from.update(part.moved_from)
        self.rows_read += part.rows_read
        self.entries_verified += part.entries_verified
        if not part.intact or builder is None:
            return False
        if not builder.extend_subtrees(part.subtrees):
            leaves = part.leaves
            builder.extend([leaves[at : at + 32] for at in range(0, len(leaves), 32)])
        return True

    def _range(
        self,
        low: int,
        high: int,
        builder: merkle.RootBuilder | list[bytes] | None,
        kept: list[Row],
        mismatched: list[tuple[Row, bytes]],
        moved_from: dict[bytes, int],
    ) -> bool:
        """Entries [low, high): their stored leaf hashes in one query, then the entries as
        one binary COPY, streamed a socket read at a time. Returns whether none is missing
        (the leaves go to ``builder`` while none has been)."""
        joined, by_index = self._stored_range(low, high)
        query = _ENTRIES.format(start=copyread.int_literal(low), end=copyread.int_literal(high))
        zero, sha256, reported = hashlib.sha256(b"\x00"), hashlib.sha256, self.reported
        present: set[int] | None = None  # only once an index is skipped
        expected = low
        for rows in copyread.copy_batches(self.conn, query, _ENTRY_COLUMNS):
            leaves = []
            for idx, version, digest, leaf_column, entity_id, entry_type, kind, prev, body in rows:
                if idx != expected:
                    if idx > expected and present is None:
                        present = set(range(low, expected))
                        builder = None  # entries are missing: named below, no root rebuilt
                    expected = max(expected, idx + 1)  # a repeat still goes into the root
                else:
                    expected = idx + 1
                if present is not None:
                    present.add(idx)
                hashed = zero.copy()
                hashed.update(body)
                leaf = hashed.digest()
                leaves.append(leaf)
                offset = 32 * (idx - low)
                stored = joined[offset : offset + 32] if joined else by_index.get(idx)
                if leaf != stored:
                    if stored is not None:
                        moved_from[stored] = idx
                    row = Row(
                        idx,
                        entry_type,
                        kind,
                        entity_id.decode(),
                        version,
                        body,
                        digest,
                        leaf_column,
                        prev,
                    )
                    mismatched.append((row, leaf))  # keeps its bytes, to name what changed
                    kept.append(row)
                    self.irregular.add(row.entity_id)
                    continue
                column = None
                if idx in reported:
                    column = ""
                elif leaf_column != leaf:
                    column = "leaf_hash"
                elif digest != sha256(body).digest():
                    column = "digest"
                elif entry_type == "version":
                    column = self._version(
                        idx, kind, entity_id.decode(), version, digest, prev, body
                    )
                if column is None and entry_type == "version":
                    continue
                row = Row(
                    idx,
                    entry_type,
                    kind,
                    entity_id.decode(),
                    version,
                    body if entry_type == "certificate" else b"",
                    digest,
                    leaf_column,
                    prev,
                )
                kept.append(row)
                if column:
                    self._column_finding(row, column)
                if entry_type == "version":
                    self.irregular.add(row.entity_id)
            self.rows_read += len(rows)
            self.entries_verified += len(rows)
            if builder is not None:
                builder.extend(leaves)
        if present is not None or expected != high:
            present = present if present is not None else set(range(low, expected))
            for i in range(low, high):
                if i not in present:
                    self.add("missing", f"log entry {i} is missing", log_index=i)
                    stored = (
                        joined[32 * (i - low) : 32 * (i - low) + 32] if joined else by_index.get(i)
                    )
                    if stored is not None:
                        moved_from[stored] = i
            return False
        return builder is not None

    def _stored_range(self, start: int, end: int) -> tuple[bytes | None, dict[int, bytes]]:
        """The stored level-0 hashes of [start, end): when all are there (the usual case),
        one concatenated value to slice; otherwise those there are, by index."""
        count, joined = self.conn.execute(
            text(
                "SELECT count(*), string_agg(hash, ''::bytea ORDER BY idx) FROM log_nodes "
                "WHERE tenant_id = current_setting('plant.tenant') "
                "AND level = 0 AND idx >= :start AND idx < :end"
            ),
            {"start": start, "end": end},
        ).one()
        if int(count) == end - start and joined is not None and len(joined) == 32 * count:
            self.rows_read += int(count)
            return bytes(joined), {}
        return None, self.stored_leaves(start, end)

    def classify(self, mismatched: list[tuple[Row, bytes]], moved_from: dict[bytes, int]) -> None:
        """Bytes that disagree with the tree: moved from another index, or edited."""
        for row, leaf in mismatched:
            if row.index in self.reported:
                continue
            origin_index = moved_from.get(leaf)
            where = dict(
                entity_type=row.kind,
                entity_id=row.entity_id,
                version=row.version,
                log_index=row.index,
            )
            if origin_index is not None and origin_index != row.index:
                self.add(
                    "reordered",
                    f"entry {row.index} holds the bytes logged at {origin_index}",
                    extra={"expected_index": origin_index},
                    **where,
                )
            elif row.entry_type == "certificate":
                self.add(
                    "certificate_invalid",
                    f"certificate at {row.index} does not match the logged bytes",
                    **where,
                )
            else:
                self._altered(row)

    def stored_leaves(self, start: int, end: int) -> dict[int, bytes]:
        """The stored level-0 hashes of [start, end) that are there, by index."""
        return self._leaves("idx >= :start AND idx < :end", {"start": start, "end": end})

    def stored_leaves_at(self, indices: Iterable[int]) -> dict[int, bytes]:
        """The stored level-0 hashes of these indexes that are there, by index, in one query."""
        return self._leaves(
            "idx = ANY(CAST(:indices AS bigint[]))", {"indices": _array(str(i) for i in indices)}
        )

    def _leaves(self, which: str, params: dict[str, Any]) -> dict[int, bytes]:
        result = self.conn.execute(
            text(
                "SELECT idx, hash FROM log_nodes WHERE tenant_id = current_setting('plant.tenant') "
                f"AND level = 0 AND {which}"
            ),
            params,
        ).all()
        self.rows_read += len(result)
        return {int(r[0]): bytes(r[1]) for r in result}

    def _altered(self, row: Row) -> None:
        """Name the section and field whose bytes changed, from the per-field digests."""
        where: dict[str, Any] = dict(
            entity_type=row.kind, entity_id=row.entity_id, version=row.version, log_index=row.index
        )
        kept, size = self._field_digests(row.index)
        try:
            doc = canonical.read(row.body)
            now = digests.field_digests(doc, size)
        except (ValueError, AttributeError, TypeError):
            self.add("altered", f"entry {row.index}'s bytes are no longer valid JSON", **where)
            return
        if not kept:  # the locators are gone or unreadable too: the edit stands, unnamed
            self.add("altered", f"entry {row.index} changed (its field digests too)", **where)
            return
        changed: list[tuple[str, str | None]] = []
        for section in sorted(set(kept) | set(now)):
            before, after = kept.get(section, {}), now.get(section, {})
            if before.get("digest") == after.get("digest"):
                continue
            fields = before.get("fields", {}), after.get("fields", {})
            names = sorted(
                n for n in set(fields[0]) | set(fields[1]) if fields[0].get(n) != fields[1].get(n)
            )
            changed += [(section, n) for n in names] or [(section, None)]
        section, field_name = changed[0] if changed else (None, None)
        self.add(
            "altered",
            f"entry {row.index} changed" + (f" in {section}.{field_name}" if field_name else ""),
            section=section,
            field=field_name,
            extra={"changes": [f"{s}.{f}" if f else s for s, f in changed]},
            **where,
        )

    def _field_digests(self, index: int) -> tuple[dict[str, Any], int]:
        """The digests kept beside an entry (either form) and their size; none if they were
        tampered with too."""
        found = self.conn.execute(
            text(
                "SELECT field_digests, field_hashes FROM log_entries "
                "WHERE tenant_id = current_setting('plant.tenant') AND idx = :i"
            ),
            {"i": index},
        ).first()
        try:
            return digests.stored_field_digests(*found) if found else ({}, 32)
        except ValueError:
            return {}, 32

    def _version(
        self,
        index: int,
        kind: str,
        entity_id: str,
        version: int,
        digest: bytes,
        prev_digest: bytes | None,
        body: bytes,
    ) -> str | None:
        """A version whose bytes match the tree: the column its bytes contradict, if any;
        else it joins its entity's chain and, as the newest read, its summary is kept.

        The chain is checked here when the version follows the newest one read of its
        entity; any other order (a first version read that is not 1, a repeat, a gap) marks
        the entity ``irregular``, and ``chains`` re-checks those entities as a whole.
        """
        try:
            doc = _read_checked(body)
        except ValueError:
            return "body"
        if doc.identity.id != entity_id:
            return "entity_id"
        if doc.versioning.version != version:
            return "version"
        if doc.identity.entity_type != kind:
            return "kind"
        relations = _relations(kind, doc.relationships)
        known = self.latest.get(entity_id)
        if entity_id in self.irregular:
            pass  # ``chains`` checks it as a whole
        elif known is None and self.opening is not None:
            if version != 1 or prev_digest is not None:  # for ``merge``, in finding order
                self.opening[entity_id] = (version, prev_digest, index, kind, len(self.findings))
        else:
            self._link(kind, entity_id, version, prev_digest, index, known)
        if known is None or version > known[1]:
            status = _NAMES.setdefault(doc.lifecycle.status, doc.lifecycle.status)
            kind = _NAMES.setdefault(kind, kind)  # one string per kind, not per entity
            category = doc.metadata.category
            if category is not None:
                category = _NAMES.setdefault(category, category)
            # the index of version 1, when this pass read it
            first = known[8] if known is not None else (index if version == 1 else None)
            self.latest[entity_id] = (
                index, version, digest, status, kind, relations, doc.identity.name, category, first
            )  # fmt: skip
        if b"\\u0000" in body:  # rare: confirmed (or not) by parsing the whole document
            self._unstorable(index, kind, entity_id, version, body)
        return None

    def _unstorable(self, index: int, kind: str, entity_id: str, version: int, body: bytes) -> None:
        """A version holding text the registry refuses at input (a NUL, which jsonb cannot
        hold): written past the checks, so named, by its first field path (all in
        ``fields``)."""
        doc = canonical.read(body)
        found = [
            (section, path)
            for section in documents.SECTIONS
            for path in unstorable_text(doc.get(section), "")
        ]
        if not found:
            return  # an escaped backslash before "u0000": plain text
        section, path = found[0]
        self.add(
            "rule_violation",
            f"version {version} holds a NUL in {section}.{path}, which the registry refuses "
            "at input (PostgreSQL's jsonb cannot hold it)",
            entity_type=kind,
            entity_id=entity_id,
            version=version,
            log_index=index,
            section=section,
            field=path,
            rule="INPUT-02",
            extra={"fields": [f"{s}.{p}" for s, p in found[:50]]},
        )

    def _link(
        self,
        kind: str,
        entity_id: str,
        version: int,
        prev_digest: bytes | None,
        index: int,
        known: _Summary | None,
    ) -> None:
        """A version read after ``known``, the newest read of its entity: it must follow it
        and link to its digest (a first version links to nothing); any other order marks the
        entity ``irregular``, for ``chains`` to check as a whole."""
        if known is None:
            if version != 1:
                self.irregular.add(entity_id)
            elif prev_digest is not None:
                self._chain_broken(kind, entity_id, version, index)
        elif known[1] == version - 1:
            if prev_digest != known[2]:
                self._chain_broken(kind, entity_id, version, index)
        else:
            self.irregular.add(entity_id)

    def _chain_broken(self, kind: str, entity_id: str, version: int, index: int) -> None:
        self.add(
            "chain_broken",
            f"version {version} does not link to version {version - 1}",
            entity_type=kind,
            entity_id=entity_id,
            version=version,
            log_index=index,
        )

    def _column_finding(self, row: Row, column: str) -> None:
        self.add(
            "altered",
            f"entry {row.index}'s {column} column disagrees with its bytes",
            entity_type=row.kind,
            entity_id=row.entity_id,
            version=row.version,
            log_index=row.index,
            section="row",
            field=column,
        )

    def column_check(self, row: Row, leaf: bytes) -> None:
        """A row's columns must agree with the bytes they describe (one entity's report)."""
        if row.index in self.reported:
            return
        column = None
        if row.leaf_hash != leaf:
            column = "leaf_hash"
        elif row.digest != digests.sha256(row.body):
            column = "digest"
        elif row.entry_type == "version":
            column = self._version(
                row.index,
                row.kind,
                row.entity_id,
                row.version,
                row.digest,
                row.prev_digest,
                row.body,
            )
        if column:
            self._column_finding(row, column)

    def beyond(self, size: int) -> None:
        """Rows past the log's committed size were never appended by the registry."""
        rows = self.conn.execute(
            text(
                "SELECT idx, kind, CAST(entity_id AS text), version FROM log_entries "
                "WHERE tenant_id = current_setting('plant.tenant') AND idx >= :size ORDER BY idx"
            ),
            {"size": size},
        ).all()
        self.rows_read += len(rows)
        for idx, kind, entity_id, version in rows:
            self.add(
                "inserted",
                f"entry {idx} lies beyond the log's size {size}",
                entity_type=kind,
                entity_id=entity_id,
                version=int(version),
                log_index=int(idx),
            )

    # -- entities ------------------------------------------------------------------------

    def recheck_chains(self, start: int, end: int) -> set[str]:
        """Chains of the entities whose versions the entries pass did not read in order
        (``irregular``): their version rows in [start, end) read again and checked as a
        whole. Returns every entity with a version in range."""
        if self.irregular:
            rows = self.conn.execute(
                text(
                    "SELECT idx, kind, CAST(entity_id AS text), version, digest, prev_digest "
                    "FROM log_entries WHERE tenant_id = current_setting('plant.tenant') "
                    "AND entry_type = 'version' AND entity_id = ANY(CAST(:ids AS uuid[])) "
                    "AND idx >= :start AND idx < :end ORDER BY idx"
                ),
                {"ids": _array(self.irregular), "start": start, "end": end},
            ).all()
            self.rows_read += len(rows)
            self.chains(
                Row(int(r[0]), "version", r[1], r[2], int(r[3]), b"", bytes(r[4]), b"", _opt(r[5]))
                for r in rows
            )
        return set(self.latest) | self.irregular

    def chains(self, rows: Iterable[Row]) -> None:
        """Each version links to the digest of the version before it, in index order."""
        by_entity: dict[str, list[Row]] = defaultdict(list)
        for row in rows:
            if row.entry_type == "version":
                by_entity[row.entity_id].append(row)
        outside = self._digests(
            {
                (entity_id, row.version - 1)
                for entity_id, versions in by_entity.items()
                for row in versions
                if row.version > 1 and not any(r.version == row.version - 1 for r in versions)
            }
        )
        for entity_id, versions in by_entity.items():
            versions.sort(key=lambda r: r.index)
            for row in versions:
                if row.index in self.reported:
                    continue
                expected = _digest_in(versions, row.version - 1)
                if expected is None:
                    expected = outside.get((entity_id, row.version - 1))
                if row.version > 1 and expected is None:
                    continue  # the predecessor is missing: reported as missing already
                if row.prev_digest != expected:
                    self._chain_broken(row.kind, entity_id, row.version, row.index)
            ordered = [r.version for r in versions]
            if ordered != sorted(ordered):
                first = next(
                    r for r, s in zip(versions, sorted(ordered), strict=True) if r.version != s
                )
                if first.index not in self.reported:
                    self.add(
                        "reordered",
                        f"versions of {entity_id} are out of log order",
                        entity_type=first.kind,
                        entity_id=entity_id,
                        version=first.version,
                        log_index=first.index,
                    )

    def _digests(self, wanted: set[tuple[str, int]]) -> dict[tuple[str, int], bytes]:
        """The stored digests of these (entity, version) pairs, in one query."""
        wanted = {(e, v) for e, v in wanted if v >= 1}
        if not wanted:
            return {}
        pairs = sorted(wanted)
        rows = self.conn.execute(
            text(
                "SELECT CAST(e.entity_id AS text), e.version, e.digest FROM log_entries e "
                "JOIN unnest(CAST(:ids AS uuid[]), CAST(:versions AS integer[])) AS w(id, v) "
                "ON e.entity_id = w.id AND e.version = w.v "
                "WHERE e.tenant_id = current_setting('plant.tenant') AND e.entry_type = 'version'"
            ),
            {"ids": _array(p[0] for p in pairs), "versions": _array(str(p[1]) for p in pairs)},
        ).all()
        self.rows_read += len(rows)
        return {(r[0], int(r[1])): bytes(r[2]) for r in rows}

    def heads_and_rules(self, entity_ids: set[str] | None, created_from: int | None = None) -> None:
        """Heads agree with the latest version; current versions still satisfy the rules.

        ``entity_ids`` None: every head (a full audit); else those entities' heads, and,
        given ``created_from``, every head created from that log index on (the entities an
        incremental range created: read by first index, not looked up one by one) and any
        whose first index is outside the log.

        A head whose current version the entries pass read and checked is compared with
        that version's summary (and, where version 1 lies before the range, with the
        ledger's index of it); the others (outside the audited range, or pointing
        elsewhere) are compared with the ledger read again. After an entries pass in the
        workers, they check the heads too, range by range, in the same order.
        """
        rules = _Rules(_referenced(self.latest.values()))
        uncovered: list[_Head] = []
        first_unread: list[tuple[_Head, _Summary]] = []  # version 1 before the range
        heads_rows: Iterable[list[tuple[Any, ...]]]
        if entity_ids is None:
            size = tree.log_size(self.conn)
            done = 0
            if self.range_summaries:
                done = self._heads_in_workers(size, rules, uncovered, first_unread)
            # by ranges of first index, then any outside the log: no ORDER BY, the two
            # partition the heads whatever their order
            heads_rows = chain(self._heads_created(done, size), self._heads_outside(size))
        elif not entity_ids:
            return
        else:
            heads_rows = self._some_heads(entity_ids, created_from)
        for batch in heads_rows:
            self.rows_read += len(batch)
            for head in batch:
                self._head(head, rules, uncovered, first_unread)
        if first_unread:  # amended in the range: where version 1 is, from the ledger
            bounds = self._version_bounds({head[3] for head, _ in first_unread})
            for head, known in first_unread:
                self._head_summary(head[3], head, known, bounds.get(head[3], (None, None))[1])
        self._uncovered(uncovered, rules)
        self._rules(rules)

    def _head(
        self,
        head: tuple[Any, ...],
        rules: _Rules | _RuleCalls,
        uncovered: list[_Head],
        first_unread: list[tuple[_Head, _Summary]],
    ) -> None:
        """One head as read: checked against the summary of the version it points at, or
        set aside for what needs the ledger again (``uncovered``, ``first_unread``)."""
        log_index = head[1]
        if log_index in self.reported:
            return
        entity_id = head[3].decode()
        known = self.latest.get(entity_id)
        if known is None or known[0] != log_index:
            uncovered.append((*head[:3], entity_id, *head[4:]))
            return
        if known[8] is None:
            first_unread.append(((*head[:3], entity_id, *head[4:]), known))
        else:
            self._head_summary(entity_id, head, known, known[8])
        if known[5] is not None or entity_id in rules.wanted:
            rules.current(entity_id, known[4], head[5], known[1], known[5])

    def _heads_in_workers(
        self,
        size: int,
        rules: _Rules,
        uncovered: list[_Head],
        first_unread: list[tuple[_Head, _Summary]],
    ) -> int:
        """The heads of the ranges the entries pass scanned in the workers, checked there
        against each range's summaries and taken in here in the order they were read (the
        ranges as ``_heads_created`` makes them). Returns the first index not covered."""
        step, summaries = copyread.RANGE, self.range_summaries or []
        ranges = [
            (low, min(low + step, size), latest)
            for low, latest in zip(range(0, size, step), summaries, strict=False)
        ]
        workers = self._pool_for(len(ranges), size)
        if workers is None:
            return 0
        parts = scan_pool.heads_checked(
            workers,
            self.tenant,
            self.snapshot,
            ranges,
            self.shared,
            rules.wanted,
            set(self.reported),
        )
        for part in parts:
            self.take_heads(part, rules, uncovered, first_unread)
        return ranges[-1][1]

    def check_heads(
        self, low: int, high: int, shared: set[str], wanted: set[str]
    ) -> scan_pool.HeadsChecked:
        """Heads whose first index is in [low, high), checked against ``self.latest`` (the
        summaries of one range) in another process, which takes what is found in
        (``take_heads``). A head is checked here only when that range holds its entity's
        version 1 and no other range holds the entity (``shared``); any other is handed
        back as read. Every outcome names the head's log index: the audit drops one that an
        earlier range's finding has reported meanwhile, as it would have skipped the head."""
        out = scan_pool.HeadsChecked(low, high)
        latest, findings = self.latest, self.findings
        calls = _RuleCalls(wanted)
        uncovered: list[_Head] = []
        first_unread: list[tuple[_Head, _Summary]] = []  # stays empty: such heads go back
        for batch in self._heads_created(low, high):
            out.rows_read += len(batch)
            for head in batch:
                entity_id = head[3].decode()
                known = latest.get(entity_id)
                if known is None or known[8] is None or entity_id in shared:
                    out.outcomes.append((head, head[1], [], [], []))
                    continue
                found = len(findings)
                self._head(head, calls, uncovered, first_unread)
                if len(findings) > found or uncovered or calls.made:
                    out.outcomes.append((None, head[1], findings[found:], uncovered, calls.made))
                    uncovered, calls.made = [], []
        return out

    def take_heads(
        self,
        part: scan_pool.HeadsChecked,
        rules: _Rules,
        uncovered: list[_Head],
        first_unread: list[tuple[_Head, _Summary]],
    ) -> None:
        """A range of heads checked in a worker, taken in as if each head were checked here
        in turn: a head handed back is checked now; an outcome whose head would have been
        skipped, its log index reported since the worker started, is dropped."""
        self.rows_read += part.rows_read
        for head, log_index, findings, more, calls in part.outcomes:
            if head is not None:
                self._head(head, rules, uncovered, first_unread)
                continue
            if log_index in self.reported:
                continue
            for finding in findings:
                self._note(finding)
            uncovered.extend(more)
            for call in calls:
                rules.current(*call)

    def _heads_created(self, start: int, end: int) -> Iterator[list[tuple[Any, ...]]]:
        """Heads whose first index is in [start, end): one statement per ``copyread.RANGE``
        indexes (each inside the timeout, reading the heap in the order it was written)."""
        for low in range(start, end, copyread.RANGE):
            high = min(end, low + copyread.RANGE)
            yield from copyread.copy_batches(
                self.conn,
                _HEADS + f" AND first_index >= {copyread.int_literal(low)} "
                f"AND first_index < {copyread.int_literal(high)}",
                _HEAD_COLUMNS,
            )

    def _heads_outside(self, size: int) -> Iterator[list[tuple[Any, ...]]]:
        """Heads whose first index is outside a log of ``size`` entries (NULL, negative or
        past it): never written by the registry, so found and checked all the same."""
        yield from copyread.copy_batches(
            self.conn,
            _HEADS + " AND (first_index IS NULL OR first_index < 0 "
            f"OR first_index >= {copyread.int_literal(size)})",
            _HEAD_COLUMNS,
        )

    def _head_summary(
        self, entity_id: str, head: tuple[Any, ...], known: _Summary, first: int | None
    ) -> None:
        """A head pointing at the version this pass checked: each column it repeats must say
        what that version's bytes say, and its first index where version 1 is (``first``)."""
        logged = (
            known[1], known[4], known[3], known[6], known[7], first,
            _unique_key(known[4], known[6], known[5]),
        )  # fmt: skip
        said = _said(head)
        if said != logged:
            self._head_fields((entity_id, known[4], known[1], head[1]), said, logged)

    def _some_heads(
        self, entity_ids: set[str], created_from: int | None
    ) -> Iterator[list[tuple[Any, ...]]]:
        """The heads of ``entity_ids``, plus, given ``created_from``, those created from it
        on and any outside the log (as a full audit reads them); the ids not found there (older
        entities, or a head whose first index was rewritten) by id, ``_BY_ID`` at a time so
        that each lookup probes the primary key."""
        seen: set[bytes] = set()
        if created_from is not None:
            size = tree.log_size(self.conn)
            for batch in chain(self._heads_created(created_from, size), self._heads_outside(size)):
                seen.update(head[3] for head in batch)
                yield batch
        rest = [i for i in entity_ids if i.encode() not in seen]
        found = self._by_ids(_HEADS + " AND entity_id = ANY(CAST(:ids AS uuid[]))", rest)
        yield [(*r[:3], r[3].encode(), *r[4:]) for r in found]

    def _uncovered(self, uncovered: list[_Head], rules: _Rules) -> None:
        """Heads the entries pass's summaries cannot vouch for: read the ledger again."""
        ids = {u[3] for u in uncovered}
        stored = self._head_versions(ids)
        bounds = self._version_bounds(ids) if ids else {}
        for head in uncovered:
            version, log_index, _, entity_id, kind, status = head[:6]
            e_version, body, e_type = stored.get(entity_id, (None, None, None))
            logged: tuple[Any, ...] | None = None
            if body is not None and e_type == "version" and e_version == version:
                try:
                    doc = canonical.read(body)
                    identity = doc["identity"]
                    relations = _relations(identity["entity_type"], doc["relationships"])
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
                self.add(
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
                self._head_behind(latest, logged_kind, entity_id, version, log_index)
            logged_key = _unique_key(logged_kind, logged_name, relations)
            self._head_fields(
                (entity_id, logged_kind, version, log_index),
                _said(head),
                (
                    version,
                    logged_kind,
                    logged_status,
                    logged_name,
                    logged_category,
                    first,
                    logged_key,
                ),
            )
            rules.current(entity_id, logged_kind, status, version, relations)

    def _head_behind(
        self, latest: int, kind: str, entity_id: str, version: int, log_index: int
    ) -> None:
        self.add(
            "inserted",
            f"version {latest} exists but the head is at {version}",
            entity_type=kind,
            entity_id=entity_id,
            version=latest,
            log_index=log_index,
        )

    def _head_fields(
        self, where: tuple[str, str, int, int], said: tuple[Any, ...], logged: tuple[Any, ...]
    ) -> None:
        """Each of a head's ``_HEAD_FIELDS`` that disagrees with the version it points at:
        ``said`` by the head, ``logged`` by the ledger; ``where`` is that version's entity
        id, kind, version and log index."""
        entity_id, kind, version, log_index = where
        for field, head_value, value in zip(_HEAD_FIELDS, said, logged, strict=True):
            if head_value != value:
                self.add(
                    "altered",
                    f"the head says {field} {_shown(head_value)}, the ledger says {_shown(value)}",
                    section="entity_heads",
                    field=field,
                    entity_type=kind,
                    entity_id=entity_id,
                    version=version,
                    log_index=log_index,
                )

    def _head_versions(self, entity_ids: set[str]) -> dict[str, tuple[int, bytes, str]]:
        """(version, body, entry type) of the entry each head points at."""
        rows = self._by_ids(
            "SELECT CAST(h.entity_id AS text), e.version, e.body, e.entry_type "
            "FROM entity_heads h JOIN log_entries e "
            "ON e.tenant_id = h.tenant_id AND e.idx = h.log_index "
            "WHERE h.tenant_id = current_setting('plant.tenant') "
            "AND h.entity_id = ANY(CAST(:ids AS uuid[]))",
            entity_ids,
        )
        self.rows_read += len(rows)
        return {r[0]: (int(r[1]), bytes(r[2]), r[3]) for r in rows}

    def _version_bounds(self, entity_ids: set[str]) -> dict[str, tuple[int, int | None]]:
        """Per entity, its newest version number in the ledger and the index of its version
        1 (None if there is none)."""
        rows = self._by_ids(
            "SELECT CAST(entity_id AS text), max(version), min(idx) FILTER (WHERE version = 1) "
            "FROM log_entries WHERE tenant_id = current_setting('plant.tenant') "
            "AND entry_type = 'version' AND entity_id = ANY(CAST(:ids AS uuid[])) "
            "GROUP BY entity_id",
            entity_ids,
        )
        self.rows_read += len(rows)
        return {r[0]: (int(r[1]), None if r[2] is None else int(r[2])) for r in rows}

    def _by_ids(self, query: str, entity_ids: Iterable[str]) -> list[Any]:
        """The rows of ``query`` (which takes ``:ids``), ``_BY_ID`` ids a statement, so
        that each lookup probes an index: asked for ten thousand ids at once, the server
        scanned every head instead."""
        ordered = sorted(entity_ids)
        rows: list[Any] = []
        for at in range(0, len(ordered), _BY_ID):
            rows += self.conn.execute(text(query), {"ids": _array(ordered[at : at + _BY_ID])}).all()
        return rows

    def _rules(self, rules: _Rules) -> None:
        """The cross-entity rules of every current version with a relationship set."""
        referenced = {i for check in rules.checks for i in _ids(check[1], check[4])}
        wanted = sorted(i for i in rules.wanted | referenced if i not in rules.refs)
        found = heads.referenced(self.conn, wanted, lock=False) if wanted else []
        for head, body in found:
            kind = kind_for_type(head.kind)
            rules.refs[head.entity_id] = Ref(
                head.entity_id,
                head.kind,
                head.status,
                documents.client_fields(kind, canonical.read(body)),
            )
        for entity_id, kind_type, status, version, fields in rules.checks:
            kind = kind_for_type(kind_type)
            certified = status == "certified"
            for v in check_relations(kind, fields, None, rules.refs, self_id=entity_id):
                if v.rule in _STATUS_RULES and not certified:
                    continue
                self.add(
                    "rule_violation",
                    f"{v.field}: {v.message}",
                    entity_type=kind_type,
                    entity_id=entity_id,
                    version=version,
                    rule=v.rule,
                    field=v.field,
                )
            if certified:
                for use in uncertified_uses(kind, fields, rules.refs):
                    field = use.split("=", 1)[0]
                    self.add(
                        "rule_violation",
                        f"{field}: certified, yet uses uncertified {use}",
                        entity_type=kind_type,
                        entity_id=entity_id,
                        version=version,
                        rule="L0-05",
                        field=field,
                    )

    def certificates(self, rows: Iterable[Row]) -> None:
        verifiers = {v.key_id_hex: v for v in self.keyring.verifiers}
        certificates = [
            r for r in rows if r.entry_type == "certificate" and r.index not in self.reported
        ]
        certified_digests = self._digests({(r.entity_id, r.version) for r in certificates})
        verified: list[tuple[Row, dict[str, Any]]] = []
        for row in certificates:
            where = dict(
                entity_type=row.kind,
                entity_id=row.entity_id,
                version=row.version,
                log_index=row.index,
            )
            try:
                envelope = canonical.loads(row.body)
                statement = canonical.loads(dsse.verify_envelope(envelope, verifiers))
                subject = statement["subject"][0]["digest"]["sha256"]
            except (
                canonical.CanonicalError,
                dsse.EnvelopeError,
                KeyError,
                TypeError,
                IndexError,
            ) as exc:
                self.add("certificate_invalid", f"certificate at {row.index}: {exc}", **where)
                continue
            certified = certified_digests.get((row.entity_id, row.version))
            if certified is None or certified.hex() != subject:
                self.add(
                    "certificate_invalid",
                    f"certificate at {row.index} certifies bytes the log does not hold",
                    **where,
                )
                continue
            verified.append((row, statement))
        self._four_eyes(verified)

    def _four_eyes(self, verified: list[tuple[Row, dict[str, Any]]]) -> None:
        """L0-06 re-checked over the log: each certificate's certifier, as signed, wrote none
        of the content it certifies since that content was last certified (by a certificate
        logged before it), as ``four_eyes`` defines content and its authors."""
        if not verified:
            return
        histories = self._histories({row.entity_id for row, _ in verified})
        for row, statement in verified:
            versions, certificates = histories.get(row.entity_id, ({}, []))
            read = [versions[v] for v in sorted(versions) if v <= row.version]
            docs = [doc for doc in read if doc is not None]
            if not docs or len(docs) != len(read):
                continue  # a version that cannot be read is named as altered
            predicate = statement.get("predicate")
            certifier = predicate.get("certifier") if isinstance(predicate, dict) else None
            earlier = [version for index, version in certificates if index < row.index]
            authors = four_eyes.content_authors(docs, earlier)
            if certifier in authors:
                self.add(
                    "rule_violation",
                    f"certificate at {row.index}: {certifier} certified version {row.version}, "
                    "whose content they wrote or amended since it was last certified",
                    entity_type=row.kind,
                    entity_id=row.entity_id,
                    version=row.version,
                    log_index=row.index,
                    rule=four_eyes.RULE,
                    extra={"certifier": certifier, "content_authors": authors},
                )

    def _histories(
        self, entity_ids: set[str]
    ) -> dict[str, tuple[dict[int, dict[str, Any] | None], list[tuple[int, int]]]]:
        """Per entity, its version documents by number (None where the bytes are not JSON)
        and its certificates' (log index, certified version), in log order."""
        rows = self._by_ids(
            "SELECT CAST(entity_id AS text), idx, entry_type, version, "
            "CASE WHEN entry_type = 'version' THEN body END FROM log_entries "
            "WHERE tenant_id = current_setting('plant.tenant') "
            "AND entity_id = ANY(CAST(:ids AS uuid[])) ORDER BY idx",
            entity_ids,
        )
        self.rows_read += len(rows)
        out: dict[str, tuple[dict[int, dict[str, Any] | None], list[tuple[int, int]]]] = {}
        for entity_id, index, entry_type, version, body in rows:
            versions, certificates = out.setdefault(entity_id, ({}, []))
            if entry_type == "certificate":
                certificates.append((int(index), int(version)))
                continue
            try:
                doc = canonical.read(bytes(body))
            except ValueError:
                doc = None
            versions.setdefault(int(version), doc if isinstance(doc, dict) else None)
        return out


# -- runs --------------------------------------------------------------------------------


def _start(principal: Principal, mode: str) -> tuple[str, bool]:
    """Record a running audit, or return the one already running (and False)."""
    run_id = str(uuid.uuid4())
    db = database()
    with db.transaction(principal.tenant) as conn:
        conn.execute(
            text(
                "UPDATE audit_runs SET status = 'failed', finished_at = now(), "
                "summary = '{\"error\": \"abandoned\"}' WHERE status = 'running' "
                f"AND started_at < now() - interval '{STALE_RUN}'"
            )
        )
    try:
        with db.transaction(principal.tenant) as conn:
            conn.execute(
                text(
                    "INSERT INTO audit_runs (tenant_id, id, mode, status, requested_by) VALUES "
                    "(current_setting('plant.tenant'), CAST(:id AS uuid), :mode, 'running', :by)"
                ),
                {"id": run_id, "mode": mode, "by": principal.subject},
            )
        return run_id, True
    except IntegrityError:
        with db.transaction(principal.tenant) as conn:
            running = conn.execute(
                text("SELECT CAST(id AS text) FROM audit_runs WHERE status = 'running'")
            ).scalar()
        if running is None:  # it finished meanwhile: start ours
            return _start(principal, mode)
        return running, False


def _resume_point(conn: Connection, mode: str) -> tuple[int, int]:
    """(first index, smallest checkpoint size) this run must verify."""
    if mode == "full":
        return 0, 0
    row = conn.execute(
        text(
            "SELECT verified_to FROM audit_runs WHERE status = 'completed' "
            "AND verified_to IS NOT NULL ORDER BY verified_to DESC LIMIT 1"
        )
    ).first()
    start = int(row[0]) if row else 0
    return start, start


def run(
    principal: Principal, body: Any, progress: Callable[[int, int], None] | None = None
) -> tuple[dict[str, Any], bool]:
    """Run an audit (or return the running one). Returns (run document, started)."""
    principal.require("auditor")
    mode = _mode(body)
    run_id, started = _start(principal, mode)
    if not started:
        return get_run(principal, run_id), False
    try:
        result = _audit(principal.tenant, mode, progress)
    except Exception as exc:
        with database().transaction(principal.tenant) as conn:
            conn.execute(
                text(
                    "UPDATE audit_runs SET status = 'failed', finished_at = now(), "
                    "summary = CAST(:s AS jsonb) WHERE id = CAST(:id AS uuid)"
                ),
                {"id": run_id, "s": canonical.dumps({"error": type(exc).__name__}).decode()},
            )
        raise
    with database().transaction(principal.tenant) as conn:
        conn.execute(
            text(
                "UPDATE audit_runs SET status = 'completed', finished_at = now(), "
                "verified_from = :vf, verified_to = :vt, checkpoint_size = :cs, "
                "finding_count = :n, findings = CAST(:f AS jsonb), summary = CAST(:s AS jsonb) "
                "WHERE id = CAST(:id AS uuid)"
            ),
            {
                "id": run_id,
                "vf": result["verified_from"],
                "vt": result["verified_to"],
                "cs": result["checkpoint_size"],
                "n": len(result["findings"]),
                "f": canonical.dumps(result["findings"]).decode(),
                "s": canonical.dumps(result["summary"]).decode(),
            },
        )
    return get_run(principal, run_id), True


def _mode(body: Any) -> str:
    if body is None:
        return "incremental"
    if not isinstance(body, dict) or set(body) - {"mode"}:
        raise ValidationFailed(
            "invalid body",
            [{"rule": "INPUT-04", "field": "", "message": "only 'mode' may be sent"}],
        )
    mode = body.get("mode", "incremental")
    if mode not in MODES:
        raise ValidationFailed(
            "invalid mode",
            [{"rule": "INPUT-02", "field": "mode", "message": f"must be one of {list(MODES)}"}],
        )
    return mode


def _audit(
    tenant: str, mode: str, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    findings: list[Finding] = []
    store = anchors.anchor_store(settings())
    try:
        tlog.seal(tenant)
    except IntegrityViolation as exc:
        kind = exc.extensions.get("finding") or "checkpoint_invalid"
        if kind not in ("rollback", "missing", "altered", "checkpoint_invalid"):
            kind = "checkpoint_invalid"
        findings.append(Finding(kind, tenant, f"sealing refused: {exc.detail}"))
    # One snapshot for every read: a write committed while the audit runs is either wholly
    # in it or wholly out of it (never counted as past the log's size, say). The anchor is
    # read first: a seal commits, then anchors, so what is anchored now is in the snapshot.
    anchored = store.latest(tenant)
    with (
        database().transaction(tenant, snapshot=True) as conn,
        scan_pool.Workers(settings().audit_workers) as workers,
    ):
        auditor = Auditor(conn, tenant, workers)
        start, since = _resume_point(conn, mode)
        auditor.anchor(anchored)
        latest = auditor.checkpoints(since)
        rows: list[Row] = []
        if latest is not None and start <= latest.size:
            rows = auditor.entries(start, latest, progress)
        verified_to = latest.size if latest else 0
        size = tree.log_size(conn)
        auditor.beyond(size)
        touched = auditor.recheck_chains(start, verified_to)
        auditor.certificates(rows)
        auditor.heads_and_rules(None if mode == "full" else touched, start)
        all_findings = _dedupe(auditor.findings, findings)
        return {
            "verified_from": start,
            "verified_to": verified_to,
            "checkpoint_size": verified_to,
            "findings": [f.as_dict() for f in all_findings],
            "summary": {
                "mode": mode,
                "entries_verified": auditor.entries_verified,
                "rows_read": auditor.rows_read,
                "findings_by_kind": _count(all_findings),
                "checkpoint": {
                    "size": verified_to,
                    "root": digests.b64(latest.root) if latest else None,
                },
            },
        }


def _dedupe(found: list[Finding], sealing: list[Finding]) -> list[Finding]:
    """Repeats dropped; a refused seal is kept only when no detailed check named its kind."""
    kinds = {f.kind for f in found}
    seen: set[tuple[Any, ...]] = set()
    out = [f for f in sealing if f.kind not in kinds]
    for f in found:
        key = (f.kind, f.entity_id, f.version, f.log_index, f.section, f.field, f.rule)
        if key in seen:
            continue
        seen.add(key)
        out.append(f)
    return out


def _count(found: list[Finding]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for f in found:
        counts[f.kind] += 1
    return dict(counts)


def _run_doc(row: Any) -> dict[str, Any]:
    return {
        "id": row[0],
        "mode": row[1],
        "status": row[2],
        "requested_by": row[3],
        "started_at": row[4],
        "finished_at": row[5],
        "verified_from": row[6],
        "verified_to": row[7],
        "checkpoint_size": row[8],
        "finding_count": row[9],
        "findings": row[10],
        "summary": row[11],
    }


# The audit_runs columns a run document is read from, in _run_doc's order.
_RUN_COLUMNS = (
    "CAST(id AS text)",
    "mode",
    "status",
    "requested_by",
    "to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
    "to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
    "verified_from",
    "verified_to",
    "checkpoint_size",
    "finding_count",
    "findings",
    "summary",
)


def _run_select(*, findings: bool) -> str:
    """The select list for run documents; a listing leaves out each run's findings (NULL)."""
    return ", ".join(c if findings or c != "findings" else "NULL" for c in _RUN_COLUMNS)


def get_run(principal: Principal, raw_id: str) -> dict[str, Any]:
    principal.require("auditor")
    run_id = path_params.uuid(raw_id)
    with database().transaction(principal.tenant) as conn:
        row = conn.execute(
            text(
                f"SELECT {_run_select(findings=True)} FROM audit_runs WHERE id = CAST(:id AS uuid)"
            ),
            {"id": run_id},
        ).first()
    if row is None:
        raise NotFound(f"no audit run {run_id}")
    return _run_doc(row)


def list_runs(principal: Principal, query: dict[str, str]) -> dict[str, Any]:
    principal.require("auditor")
    limit = query_params.integer(
        query, "limit", minimum=1, maximum=MAX_RUNS_PAGE, default=RUNS_PAGE
    )
    with database().transaction(principal.tenant) as conn:
        rows = conn.execute(
            text(
                f"SELECT {_run_select(findings=False)} "
                "FROM audit_runs ORDER BY started_at DESC LIMIT :limit"
            ),
            {"limit": limit},
        ).all()
    return {"runs": [_run_doc(r) for r in rows]}


def entity_report(principal: Principal, slug: str, raw_id: str) -> dict[str, Any]:
    """One entity's tamper report: every version and certificate of it, checked now."""
    principal.require("auditor")
    kind = resolve_kind(slug)
    entity_id = path_params.uuid(raw_id)
    with database().transaction(principal.tenant) as conn:
        head = heads.get(conn, entity_id)
        if head is None or head.kind != kind.type:
            raise NotFound(f"no {kind.type} {entity_id}")
        auditor = Auditor(conn, principal.tenant)
        auditor.irregular.add(entity_id)  # its chain is checked as a whole, below
        latest = tree.latest_checkpoint(conn)
        # two queries whatever the number of versions (not two per entry)
        rows = _entity_rows(conn, entity_id)
        leaves = auditor.stored_leaves_at(r.index for r in rows) if rows else {}
        mismatched = []
        for r in rows:
            stored = leaves.get(r.index)
            leaf = merkle.leaf_hash(r.body)
            if stored is not None and stored != leaf:
                mismatched.append((r, leaf))
            else:
                auditor.column_check(r, leaf)
        auditor.classify(mismatched, {})
        auditor.chains(rows)
        auditor.certificates(rows)
        auditor.heads_and_rules({entity_id})
    return {
        "entity_type": kind.type,
        "entity_id": entity_id,
        "entries": len(rows),
        "sealed": sum(1 for r in rows if latest and r.index < latest.size),
        "findings": [f.as_dict() for f in auditor.findings],
    }
