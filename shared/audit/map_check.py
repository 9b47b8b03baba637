"""The map pass (issue 24): each ``map_commit`` commits to the heads the log says.

The log is read once, by the entries pass, which hands what the map needs of each entry to a
``Replay`` (``map_feed``) in log order. Each entity's head is rebuilt with the seal's own rule
(``map_feed.head_value``, the bytes of ``map_commit.head_of``). Full audit: at each commit
the heads changed since the previous one are applied to an in-memory map and its root
compared with the commit's; then every node of every stored stratum (``map_strata``) is
compared with the recomputed one.
Incremental audit: the stored map of the latest commit, with the keys changed since the last
verified commit taken out, must rebuild that commit's root; each commit since is then
rebuilt from it (``map_rebuild``) and its root compared; and the stored map must prove every
changed head against the latest commit. Each checkpoint from the first commit on must end
with a commit. Anything else is a ``map_invalid`` finding naming the commit's index and,
where one key explains it, the entity.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import text

from shared.audit import map_feed, map_rebuild
from shared.audit.state import AuditState
from shared.integrity import heads_map, map_memory, sparse_merkle
from shared.storage import copyread, map_nodes, map_strata
from shared.tlog import map_commit

_ENTRIES = (
    "SELECT idx, entry_type, kind, CAST(entity_id AS text), version, leaf_hash, "
    "CASE WHEN entry_type <> 'certificate' THEN body END FROM log_entries "
    "WHERE tenant_id = current_setting('plant.tenant') AND idx < {end} ORDER BY idx"
)
_COLUMNS = (
    copyread.INT8,
    copyread.TEXT,
    copyread.TEXT,
    copyread.raw(36),
    copyread.INT4,
    copyread.raw(32),
    copyread.BYTEA,
)
_STRATA = (
    "SELECT prefix, nodes FROM heads_map_strata WHERE tenant_id = current_setting('plant.tenant')"
    "{range} ORDER BY prefix"
)
_STRATA_COLUMNS = (copyread.BYTEA, copyread.BYTEA)
_PRIOR_COMMIT = text(
    "SELECT idx, body FROM log_entries WHERE tenant_id = current_setting('plant.tenant') "
    "AND entry_type = 'map_commit' AND idx < :low ORDER BY idx DESC LIMIT 1"
)


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


def checked(state: AuditState, replay: Replay | None, start: int, size: int) -> None:
    """The map pass over what ``replay`` was fed of entries [start, size) (none: what the
    log holds, read here, as when audit parts were merged)."""
    first = state.conn.execute(
        text(
            "SELECT min(idx) FROM log_entries WHERE tenant_id = current_setting('plant.tenant') "
            "AND entry_type = 'map_commit'"
        )
    ).scalar()
    if first is None:
        return
    _ends(state, int(first), start)
    if replay is None:
        _replayed(state, start, size)
        return
    for idx, detail, who in replay.found:
        invalid(state, idx, detail, who)
    if replay.full:
        if replay.last == size - 1:  # else the stored map is of a commit the log lacks: named
            _nodes(state, replay)
    else:
        incremental(state, replay, start, size)


def _ends(state: AuditState, first: int, since: int) -> None:
    """Every checkpoint after the first commit ends with a commit (its last leaf). The last
    leaves are probed by index from a list made here: ``e.idx = c.size - 1`` in a join is
    no index condition under row-level security (the arithmetic is not leakproof), and the
    join scanned the whole log."""
    sizes = [
        int(size)
        for (size,) in state.conn.execute(
            text(
                "SELECT size FROM checkpoints WHERE tenant_id = current_setting('plant.tenant') "
                "AND size > :first AND size >= :since ORDER BY size"
            ),
            {"first": first, "since": since},
        )
    ]
    if not sizes:
        return
    commits = {
        int(idx)
        for (idx,) in state.conn.execute(
            text(
                "SELECT idx FROM log_entries WHERE tenant_id = current_setting('plant.tenant') "
                "AND idx = ANY(CAST(:ends AS bigint[])) AND entry_type = 'map_commit'"
            ),
            {"ends": "{" + ",".join(str(size - 1) for size in sizes) + "}"},
        )
    }
    for size in sizes:
        if size - 1 not in commits:
            invalid(
                state, size - 1, f"the checkpoint of size {size} does not end with a map commit"
            )


def incremental(state: AuditState, replay: Replay, start: int, size: int) -> None:
    """The commits in [start, size), each rebuilt from the last verified one before
    ``start``; then the stored map must prove each changed head against the latest."""
    segments = [(s, *s.commit) for s in replay.segments if s.commit is not None]
    if not segments:
        return
    latest = segments[-1][1:]
    prior = state.conn.execute(_PRIOR_COMMIT, {"low": start}).first()
    if prior is None:  # a log older than the map: its first commit covers entries before start
        _replayed(state, start, size)
        return
    try:
        base_root = heads_map.decode_commit(bytes(prior[1])).map_root
    except heads_map.MalformedCommit:  # named by the run that verified it
        _replayed(state, start, size)
        return
    touched: set[str] = set()
    for segment, _, _ in segments:
        touched.update(segment.versions, segment.certificates, segment.others)
    versions, certificates = map_commit.newest_at(state.conn, sorted(touched), int(prior[0]))
    state.rows_read += len(versions) + len(certificates)
    replay.versions, replay.certificates = versions, certificates
    digests = _digests(replay, touched)[0]
    keys = sorted(map_feed.entity_key(e) for e in touched)
    store = map_nodes.DbMapNodes(state.conn)
    pruned = map_rebuild.Pruned(store.strata, keys)
    try:
        # the stored strata on the changed keys' paths (map strata, which ``rows_read`` does
        # not count: it counts the log's rows)
        store.get_paths(keys or [sparse_merkle.EMPTY])
        rebuilt = _root(store, pruned, digests)
    except sparse_merkle.MissingNode:  # a child hash points at no stored node, or a stratum
        rebuilt = None  # on the paths is unreadable (MalformedStratum): rewritten
    if rebuilt != base_root:
        _replayed(state, start, size)  # the stored map left the verified one: replay all
        return
    root = base_root
    try:
        for segment, idx, body in segments:
            replay.versions.update(segment.versions)
            replay.certificates.update(segment.certificates)
            changed, named = _digests(
                replay, {*segment.versions, *segment.certificates, *segment.others}
            )
            if any(digests.get(key) != value for key, value in changed.items()):
                digests.update(changed)  # else the root is the one just rebuilt (a commit
                root = _root(store, pruned, digests)  # of an audit's report: no head)
            wrong = compare(idx, body, root, named)
            if wrong is not None:
                invalid(state, idx, *wrong)
    except sparse_merkle.MissingNode as exc:
        invalid(state, latest[0], f"the stored map lacks a node: {exc}")
        return
    _proven(state, latest, replay, touched, pruned, digests)


def _digests(replay: Replay, entities: set[str]) -> tuple[dict[bytes, bytes], list[str]]:
    """The changed heads (key -> value hash) and the entities that have one, in their order."""
    records, named = map_feed.head_records(replay.versions, replay.certificates, entities)
    return {records[i : i + 32]: records[i + 32 : i + 64] for i in range(0, len(records), 64)}, (
        named
    )


def _root(
    store: map_nodes.DbMapNodes, pruned: map_rebuild.Pruned, digests: dict[bytes, bytes]
) -> bytes:
    """The root with the changed keys holding ``digests``, reading the stored strata that
    hold the nodes whose kind it needs (one statement a round, rarely more than one)."""
    while True:
        root = pruned.root(digests)
        if not pruned.needed:
            return root
        found = store.get_nodes(pruned.needed)
        missing = [address for address in pruned.needed if address not in found]
        if missing:
            raise sparse_merkle.MissingNode(f"node {min(missing)} is not stored")


def _proven(
    state: AuditState,
    latest: tuple[int, bytes],
    replay: Replay,
    touched: set[str],
    pruned: map_rebuild.Pruned,
    digests: dict[bytes, bytes],
) -> None:
    """The heads of the entities changed since the last verified commit, as the log gives
    them, proven by the stored map against the latest commit's root (the leaves too), from
    the stored paths already read of their keys (``pruned.nodes``): checked at once
    (``Pruned.proves``, over ``digests``: their value hashes at that commit, as the roots
    took them), then, when they are not all proven, each named."""
    idx, body = latest
    try:
        commit = heads_map.decode_commit(body)
    except heads_map.MalformedCommit:
        return  # named
    if pruned.proves(commit.map_root, digests):
        return
    nodes = pruned.nodes
    ordered = sorted(replay.updates(touched).items(), key=lambda item: item[1][0])
    keys = [key for key, _ in ordered]
    try:
        paths = sparse_merkle.MemoryNodeStore()
        paths.nodes = dict(nodes)
        proofs = sparse_merkle.prove_many(paths, keys)
    except sparse_merkle.MissingNode as exc:
        invalid(state, idx, f"the stored map lacks a node: {exc}")
        return
    named = len(state.findings)
    for (key, (entity_id, value)), proof in zip(ordered, proofs, strict=True):
        depth = len(proof.siblings)
        leaf = nodes.get((depth, int.from_bytes(key, "big") >> (sparse_merkle.DEPTH - depth)))
        try:
            sparse_merkle.check(commit.map_root, key, value, proof)
            if leaf != sparse_merkle.leaf_node(key, sparse_merkle.value_hash(value)):
                raise sparse_merkle.ProofFailure(
                    sparse_merkle.Reason.ROOT_MISMATCH, "the stored leaf is not the head's"
                )
        except sparse_merkle.ProofFailure as exc:
            invalid(
                state, idx, f"the stored map does not prove the head the log gives: {exc}",
                entity_id,
            )  # fmt: skip
    if len(state.findings) == named:  # each proof holds from its siblings and leaf, yet
        for key, (entity_id, _) in ordered:  # the check said no: a pointer on a path
            broken = _broken_pointer(nodes, key)
            if broken is not None:
                invalid(
                    state, idx, f"the stored node at depth {broken} on the head's path names "
                    "a child that is not the node stored below it", entity_id,
                )  # fmt: skip


def _broken_pointer(nodes: Mapping[sparse_merkle.Address, bytes], key: bytes) -> int | None:
    """The depth of the first stored node on ``key``'s path whose pointer towards the key is
    not the hash of the node stored there. A proof reads only the siblings, so such a
    rewrite leaves every proof holding; ``Pruned.proves`` checks the pointers too."""
    bits, depth, index = int.from_bytes(key, "big"), 0, 0
    node = nodes.get((0, 0))
    while node is not None and node[:1] == sparse_merkle.INTERIOR:
        bit = (bits >> (sparse_merkle.DEPTH - 1 - depth)) & 1
        pointer = node[1 + 32 * bit : 33 + 32 * bit]
        child = nodes.get((depth + 1, index << 1 | bit))
        if pointer == sparse_merkle.EMPTY or child is None:
            return None
        if sparse_merkle.node_hash(child) != pointer:
            return depth
        depth, index, node = depth + 1, index << 1 | bit, child
    return None


def _replayed(state: AuditState, start: int, size: int) -> None:
    """The whole map replayed from a second read of the log, its commits from ``start`` on
    compared, and its nodes: when no verified commit is there to build on."""
    replay = Replay(0)
    found = len(state.findings)
    query = _ENTRIES.format(end=copyread.int_literal(size))
    feed = map_feed.Feed()
    for rows in copyread.copy_batches(state.conn, query, _COLUMNS):
        for idx, entry_type, kind, raw_id, version, leaf, body in rows:
            status = map_commit.status_of(body) if entry_type == "version" else None
            feed.entry(idx, entry_type, kind, raw_id.decode(), version, leaf, status, body)
        replay.take(feed)
        feed = map_feed.Feed()
    replay.take(feed)
    for idx, detail, who in replay.found:
        invalid(state, idx, detail, who)
    # the commits before ``start`` were verified before: what is named of them now is not new
    state.findings[found:] = [
        f for f in state.findings[found:] if f.log_index is None or f.log_index >= start
    ]
    if replay.last == size - 1:
        _nodes(state, replay)


def _stored_strata(state: AuditState, nodes: int) -> Any:
    """The stored strata, (prefix, bytes), in prefix order (the recomputed map's, bytes
    compared as bytea is), about ``copyread.RANGE`` nodes a statement so that each stays
    inside the statement timeout: in ranges of their prefixes' first two bytes (keys are
    hashes, so the ranges hold about as many), sized by the map the log gives (``nodes``)."""
    parts = 1
    while parts < nodes / copyread.RANGE and parts < 1 << 16:
        parts *= 2
    bounds = [((j << 16) // parts).to_bytes(2, "big") for j in range(1, parts)]
    for low, high in zip([None, *bounds], [*bounds, None], strict=True):
        bounds_sql = "" if low is None else f" AND prefix >= {copyread.bytea_literal(low)}"
        bounds_sql += "" if high is None else f" AND prefix < {copyread.bytea_literal(high)}"
        query = _STRATA.format(range=bounds_sql)
        for batch in copyread.copy_batches(state.conn, query, _STRATA_COLUMNS):
            state.rows_read += len(batch)
            yield from batch


def _nodes(state: AuditState, replay: Replay) -> None:
    """Every stored stratum against the recomputed map's at the last commit: both streamed
    in prefix order and merged, a stratum equal to its recomputed row passing whole, so
    neither map is held (a dict of the recomputed nodes by address added ~430 MB to the
    peak RSS at 1,000,000 heads). Only the nodes that differ or lack are kept, to be named
    in address order after the strata found unreadable; an unreadable stratum's nodes are
    not named."""
    expected = replay.memory.strata()
    want = next(expected, None)
    wrong: list[tuple[sparse_merkle.Address, bytes]] = []
    for prefix, data in _stored_strata(state, _NODES_A_HEAD * len(replay.versions)):
        while want is not None and want[0] < prefix:  # a recomputed stratum not stored
            wrong += _differing(want[0], {}, map_strata.decode(want[1]))
            want = next(expected, None)
        mine = b""
        if want is not None and want[0] == prefix:
            mine, want = want[1], next(expected, None)
            if data == mine:
                continue
        try:
            stored = map_strata.decode(data)
        except map_strata.MalformedStratum as exc:
            invalid(
                state, replay.last,
                f"the stored map stratum under prefix {prefix.hex() or '(none)'} is "
                f"unreadable: {exc}",
            )  # fmt: skip
            continue
        wrong += _differing(prefix, stored, map_strata.decode(mine) if mine else {})
    while want is not None:
        wrong += _differing(want[0], {}, map_strata.decode(want[1]))
        want = next(expected, None)
    if not wrong:
        return
    keys = {node[1:33] for _, node in wrong if node[:1] == sparse_merkle.LEAF}
    owners = {key: e for e in replay.versions if (key := map_feed.entity_key(e)) in keys}
    for (depth, _), node in sorted(wrong, key=lambda item: item[0]):
        owner = owners.get(node[1:33]) if node[:1] == sparse_merkle.LEAF else None
        invalid(
            state,
            replay.last,
            f"the stored map node at depth {depth} differs from the one the log gives",
            owner,
        )


_NODES_A_HEAD = 3  # a map of n random keys holds ~2.4 n nodes: to size the strata's reads


def _differing(
    prefix: bytes, stored: dict[int, bytes], expected: dict[int, bytes]
) -> list[tuple[sparse_merkle.Address, bytes]]:
    """The nodes of one stratum (by position) that differ or lack on one side, by address,
    each with the node the log gives, else the stored one."""
    return [
        (map_strata.address(prefix, position), expected.get(position) or stored[position])
        for position in sorted(stored.keys() | expected.keys())
        if stored.get(position) != expected.get(position)
    ]
