"""The incremental map check: the stored map of the latest commit, the changed keys taken
out, rebuilds the last verified commit's root; each commit since is rebuilt from it; the
stored map proves every changed head against the latest commit."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import text

from shared.audit import map_feed, map_rebuild
from shared.audit.map_check.full import _replayed
from shared.audit.map_check.replay import Replay, compare, invalid
from shared.audit.state import AuditState
from shared.integrity import heads_map, sparse_merkle
from shared.storage import map_nodes
from shared.tlog import map_commit

_PRIOR_COMMIT = text(
    "SELECT idx, body FROM log_entries WHERE tenant_id = current_setting('plant.tenant') "
    "AND entry_type = 'map_commit' AND idx < :low ORDER BY idx DESC LIMIT 1"
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
