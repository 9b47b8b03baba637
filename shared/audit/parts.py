"""A full audit in parts: processes that share nothing but the anchor store (the parallel
tasks of a Cloud Run job) each scan one share of the log up to its newest signed checkpoint,
and a merge joins what they wrote into one run.

Entries up to a sealed checkpoint never change, so each part reads its ranges in a snapshot
of its own. The log up to the checkpoint is cut as the entries pass cuts it for its worker
processes (``entries.split``; narrower ranges, a power of two wide, when the log is small, so
that every part has some), and part ``index`` of ``count`` takes the index-th share of those
ranges. For each range it keeps what a worker hands back (``entry_ranges.Scanned``: findings, the
range's subtree hashes, each entity's summary and first version there, the rows the later
passes need, what the map pass needs of it: ``part_ranges``) and writes them, signed, to
``_audit-parts/<tenant>/<execution>/<index>``.

The merge (``Parts``) is a full audit run as any other (recorded, its report logged) whose
entries pass takes those ranges from the parts, each with ``entries.merge`` (what it does
with a worker's, the map's feed included), and reads whatever the log holds past them itself.
It trusts no part blindly: a missing part, one not signed by the tenant's signing keys, or one
whose header does not say the run, index, count, checkpoint, ranges and map commits expected
(the log's, read by the merge) is refused by name before the run starts, and the root the
parts' subtree hashes rebuild is checked against the signed checkpoint as the audit checks any
(a wrong hash there is a finding).
"""

from __future__ import annotations

import base64
import json
import marshal
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import astuple, dataclass
from typing import Any

from shared.audit import checkpoints, entries, entry_ranges, part_ranges, receipts
from shared.audit.entry_ranges import Scanned
from shared.audit.findings import Finding
from shared.audit.state import AuditState
from shared.config import settings
from shared.integrity import canonical, dsse
from shared.security.principal import Principal
from shared.storage import copyread
from shared.storage.engine import database
from shared.tlog import anchors, keys

Progress = Callable[[int, int], None]

FORMAT = "plant-audit-part/2"  # /2: each range carries its map feed (``part_ranges``)
PAYLOAD_TYPE = "application/vnd.plant.audit-part"
PREFIX = "_audit-parts"  # a tenant id never starts with "_": apart from every tenant's anchors
_EXECUTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class PartsRefused(Exception):
    """The parts cannot be merged (one is missing, unsigned, or not of this run)."""


def object_name(tenant: str, execution: str, index: int) -> str:
    """Where part ``index`` of an execution is kept in the anchor store."""
    if not _EXECUTION.fullmatch(execution):
        raise PartsRefused(f"{execution!r} is not an execution name")
    return f"{PREFIX}/{tenant}/{execution}/{index:05d}.part"


def ranges(size: int, count: int) -> list[tuple[int, int]]:
    """The ranges of [0, size) a log is cut into for ``count`` parts: the entries pass's, or
    narrower (a power of two wide, so each range's subtrees fall where the tree has them)
    when there are fewer than ``count`` of those."""
    width = copyread.RANGE
    while width > 1 and width * count > size:
        width //= 2
    return entries.split(0, size, width)


def share(size: int, count: int, index: int) -> list[tuple[int, int]]:
    """Part ``index``'s share of ``ranges``: consecutive, as even as whole ranges allow."""
    if not 0 <= index < count:
        raise PartsRefused(f"part {index} of {count} does not exist")
    every = ranges(size, count)
    return every[index * len(every) // count : (index + 1) * len(every) // count]


def _span(ranges: list[tuple[int, int]]) -> tuple[int, int]:
    """[low, high) of consecutive ranges (empty: none)."""
    return (ranges[0][0], ranges[-1][1]) if ranges else (0, 0)


def _sealed(tenant: str) -> tuple[int, bytes]:
    """The size and root of the newest checkpoint the audit itself would take as valid
    (``checkpoints.verified``; its findings are the merge's run's to make). None valid: size
    0, every part empty, and the merge reads the whole log itself."""
    with database().transaction(tenant, snapshot=True) as conn:
        latest = checkpoints.verified(AuditState(conn, tenant), 0)
    return (latest.size, latest.root) if latest else (0, b"")


def _receipts(tenant: str, low: int, high: int) -> list[Finding]:
    """What the receipts pass finds in [low, high), every entry taken as not yet named (the
    merge drops those its run has named when it takes them, as the pass would skip them)."""
    with database().transaction(tenant, snapshot=True) as conn:
        state = AuditState(conn, tenant)
        receipts.checked(state, low, high)
    return state.findings


def write(tenant: str, execution: str, index: int, count: int) -> dict[str, Any]:
    """Scan part ``index`` of ``count`` and keep it, signed, in the anchor store. Returns its
    header. Write-once: a task run again (Cloud Run retries a failed one) keeps the part it
    wrote, even if a seal has moved the newest checkpoint since."""
    name = object_name(tenant, execution, index)
    store = anchors.anchor_store(settings())
    if store.has_object(name):
        return {"tenant": tenant, "execution": execution, "index": index, "kept": name}
    size, root = _sealed(tenant)
    mine = share(size, count, index)
    scanned = [
        part_ranges.packed(entry_ranges.scan(tenant, None, low, high, set(), feed=True))
        for low, high in mine
    ]
    found = _receipts(tenant, *_span(mine)) if mine else []
    header = {
        "format": FORMAT,
        "tenant": tenant,
        "execution": execution,
        "index": index,
        "count": count,
        "checkpoint": {"size": size, "root": base64.b64encode(root).decode()},
        "ranges": [list(r) for r in mine],
        "commits": part_ranges.commits_of(s[13] for s in scanned),
    }
    body = zlib.compress(marshal.dumps((scanned, [astuple(f) for f in found])), 1)
    payload = canonical.dumps(header) + b"\n" + body
    envelope = dsse.sign_envelope(PAYLOAD_TYPE, payload, keys.keyring().active)
    store.put_object(name, json.dumps(envelope))
    return header


def claim(tenant: str, execution: str, index: int, count: int) -> bool:
    """Whether this task is the one to merge: every part is written and its write-once claim
    is the one stored (a task run again keeps the claim it made)."""
    store = anchors.anchor_store(settings())
    if not all(store.has_object(object_name(tenant, execution, i)) for i in range(count)):
        return False
    try:
        store.put_object(f"{PREFIX}/{tenant}/{execution}/merge.claim", f"part {index}\n")
    except anchors.AnchorConflict:
        return False
    return True


@dataclass
class _Part:
    header: dict[str, Any]
    body: bytes  # the compressed ranges, read when the merge reaches them


class Parts:
    """The parts of one execution, each read and its signature and header checked before the
    merge's run starts; their ranges are decoded one part at a time as the run takes them."""

    def __init__(self, tenant: str, execution: str, count: int) -> None:
        self.tenant, self.execution, self.count = tenant, execution, count
        store = anchors.anchor_store(settings())
        names = [object_name(tenant, execution, i) for i in range(count)]
        stored = [store.get_object(name) for name in names]
        missing = [f"part {i} ({names[i]})" for i, text in enumerate(stored) if text is None]
        if missing:
            raise PartsRefused(f"{len(missing)} of {count} parts missing: {', '.join(missing)}")
        verifiers = {v.key_id_hex: v for v in keys.keyring().verifiers}
        self._parts = [
            self._opened(i, name, text or "", verifiers)
            for i, (name, text) in enumerate(zip(names, stored, strict=True))
        ]
        size = self._parts[0].header["checkpoint"]["size"]
        with database().transaction(tenant, snapshot=True) as conn:
            self._commits = part_ranges.commits(conn, size)  # the map is checked against these
        for i, part in enumerate(self._parts):
            if part.header["checkpoint"] != self._parts[0].header["checkpoint"]:
                raise PartsRefused(
                    f"part {i} ({names[i]}) audited checkpoint {part.header['checkpoint']['size']}"
                    f", part 0 checkpoint {size}: run the job again"
                )
            mine = share(size, count, i)
            if part.header["ranges"] != [list(r) for r in mine]:
                raise PartsRefused(f"part {i} ({names[i]}) does not hold its share of the log")
            low, high = _span(mine)
            logged = [idx for idx in self._commits if low <= idx < high]
            if part.header.get("commits") != logged:  # a part cannot move, add or drop one
                raise PartsRefused(
                    f"part {i} ({names[i]}) places the map commits of its share at "
                    f"{part_ranges.listed(part.header.get('commits'))}, the log at "
                    f"{part_ranges.listed(logged)}"
                )
        self._names = names
        self.size: int = size
        self.taken = 0
        self._receipts: list[Finding] = []  # of the parts decoded so far

    def _opened(self, index: int, name: str, text: str, verifiers: dict[str, Any]) -> _Part:
        """One part's envelope verified and its header read."""
        try:
            envelope = json.loads(text)
            if envelope.get("payloadType") != PAYLOAD_TYPE:
                raise dsse.EnvelopeError("not an audit part")
            payload = dsse.verify_envelope(envelope, verifiers)
        except (ValueError, AttributeError, dsse.EnvelopeError) as exc:
            raise PartsRefused(
                f"part {index} ({name}) is not signed by the log's keys: {exc}"
            ) from None
        head, _, body = payload.partition(b"\n")
        header = json.loads(head)
        expected = {
            "format": FORMAT,
            "tenant": self.tenant,
            "execution": self.execution,
            "index": index,
            "count": self.count,
        }
        if {k: header.get(k) for k in expected} != expected:
            raise PartsRefused(f"part {index} ({name}) is another run's: {head.decode()[:200]}")
        return _Part(header, body)

    def covering(self, size: int) -> int:
        """The parts' checkpoint, if the run's checked entries reach it (else none taken)."""
        self.taken = self.size if self.size <= size else 0
        return self.taken

    def summary(self) -> dict[str, Any]:
        """What the run's summary says of the parts: which, and how many entries they gave."""
        return {"execution": self.execution, "count": self.count, "entries": self.taken}

    def scanned(self) -> Iterator[Scanned]:
        """Each range of each part, in log order, its map feed with the log's commits."""
        for i, part in enumerate(self._parts):
            values, found = marshal.loads(zlib.decompress(part.body))  # noqa: S302 (signed)
            if part_ranges.commits_of(v[13] for v in values) != part.header["commits"]:
                raise PartsRefused(f"part {i} ({self._names[i]}): its feed and header disagree")
            self._receipts.extend(Finding(*f) for f in found)
            for v in values:
                try:
                    yield part_ranges.unpacked(v, self._commits)
                except part_ranges.FeedUnreadable as exc:
                    raise PartsRefused(f"part {i} ({self._names[i]}): its feed: {exc}") from None

    def receipts(self, state: AuditState) -> int:
        """The receipts pass over the ranges taken, from the parts: each finding noted as the
        pass would, unless the run has named its entry already. Returns where the pass
        goes on by itself."""
        if not self.taken:
            return 0
        for finding in self._receipts:
            if finding.log_index not in state.reported:
                state.note(finding)
        return self.taken


def merge(
    principal: Principal, execution: str, count: int, progress: Progress | None = None
) -> tuple[dict[str, Any], bool]:
    """The execution's parts joined into one full audit run, recorded and logged as any:
    its findings those of a full audit in one process, in the same order. Returns (run
    document, started), as ``runs.run`` does."""
    from shared.audit import runs  # the run, not needed to write a part

    return runs.run(
        principal, {"mode": "full"}, progress, Parts(principal.tenant, execution, count)
    )
