"""The map pass (issue 24): each ``map_commit`` commits to the heads the log says.

Full audit: the log is replayed in order, rebuilding each entity's head with the seal's own
rule (``map_commit.head_of``); at each commit the heads changed since the previous one are
applied to an in-memory map and its root compared with the commit's; then every stored map
node is compared with the recomputed one. Incremental audit: the commits since the last run
are checked for their form and place, and the heads of the entities changed since the last
verified commit, derived from the log, must be proven by the stored map against the latest
commit's root. Each checkpoint from the first commit on must end with a commit. Anything
else is a ``map_invalid`` finding naming the commit's index and, where one key explains it,
the entity.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from shared.audit.state import AuditState
from shared.integrity import heads_map, sparse_merkle
from shared.storage import copyread, map_nodes
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
_NODES = "SELECT depth, prefix, node FROM heads_map_nodes WHERE tenant_id = current_setting('plant.tenant')"  # noqa: E501
_NODE_COLUMNS = (copyread.INT2, copyread.BYTEA, copyread.BYTEA)


Version = tuple[int, str, int, bytes, str | None]  # index, kind, version, leaf, status


class _Replay:
    """The heads as the log builds them, and the map they commit to."""

    def __init__(self, state: AuditState) -> None:
        self.state = state
        self.memory = sparse_merkle.MemoryNodeStore()
        self.versions: dict[str, Version] = {}  # entity id -> its newest version
        self.certificates: dict[str, int] = {}  # entity id -> its newest certificate
        self.changed: set[str] = set()  # since the last commit
        self.owners: dict[bytes, str] = {}  # key -> entity id
        self.commits = 0
        self.last: int | None = None  # the last commit's index

    def row(self, row: tuple[Any, ...]) -> None:
        idx, entry_type, kind, raw_id, version, leaf, body = row
        entity_id = raw_id.decode()
        if entry_type == "map_commit":
            self.commit(idx, body)
            return
        self.changed.add(entity_id)
        if entry_type == "version":
            self.versions[entity_id] = (idx, kind, version, leaf, map_commit.status_of(body))
        else:
            self.certificates[entity_id] = idx

    def head(self, entity_id: str) -> heads_map.Head | None:
        """The entity's head now, by the seal's rule."""
        found = self.versions.get(entity_id)
        if found is None:
            return None
        idx, kind, version, leaf, status = found
        certificate = self.certificates.get(entity_id)
        return map_commit.head_of(kind, entity_id, version, idx, leaf, status, certificate)

    def commit(self, idx: int, body: bytes) -> None:
        """Apply the heads changed since the last commit; compare the roots."""
        self.commits += 1
        self.last = idx
        updates: dict[bytes, bytes] = {}
        for entity_id in self.changed:
            head = self.head(entity_id)
            if head is not None:
                self.owners[head.key] = entity_id
                updates[head.key] = heads_map.encode_head(head)
        self.changed = set()
        root = self.memory.update(updates)
        try:
            commit = heads_map.decode_commit(body)
        except heads_map.MalformedCommit as exc:
            invalid(self.state, idx, f"the map commit at {idx} is malformed: {exc}")
            return
        if commit.log_size != idx:
            invalid(self.state, idx, f"the map commit at {idx} says it covers {commit.log_size}")
        elif commit.map_root != root:
            who = self.owners[next(iter(updates))] if len(updates) == 1 else None
            invalid(
                self.state,
                idx,
                f"the map commit at {idx} holds another root than the heads the log gives "
                f"({len(updates)} changed since the commit before)",
                who,
            )


def invalid(state: AuditState, idx: int | None, detail: str, entity_id: str | None = None) -> None:
    """A ``map_invalid`` finding at a commit's index, naming the entity when known."""
    state.add("map_invalid", detail, entity_id=entity_id, log_index=idx)


def checked(state: AuditState, full: bool, start: int, size: int) -> None:
    """The map pass over entries [0, size) (full) or the commits from ``start`` on."""
    first = state.conn.execute(
        text(
            "SELECT min(idx) FROM log_entries WHERE tenant_id = current_setting('plant.tenant') "
            "AND entry_type = 'map_commit'"
        )
    ).scalar()
    if first is None:
        return
    _ends(state, int(first), 0 if full else start)
    if full:
        replay(state, size)
    else:
        incremental(state, start, size)


def _ends(state: AuditState, first: int, since: int) -> None:
    """Every checkpoint after the first commit ends with a commit (its last leaf)."""
    rows = state.conn.execute(
        text(
            "SELECT c.size FROM checkpoints c LEFT JOIN log_entries e "
            "ON e.tenant_id = c.tenant_id AND e.idx = c.size - 1 "
            "WHERE c.size > :first AND c.size >= :since "
            "AND e.entry_type IS DISTINCT FROM 'map_commit' ORDER BY c.size"
        ),
        {"first": first, "since": since},
    ).all()
    for (size,) in rows:
        invalid(state, size - 1, f"the checkpoint of size {size} does not end with a map commit")


def incremental(state: AuditState, start: int, size: int) -> None:
    """The commits in [start, size): each well formed at its place; the heads changed since
    the last commit before ``start``, derived from the log, proven by the stored map against
    the latest commit's root."""
    rows = state.conn.execute(
        text(
            "SELECT idx, body FROM log_entries WHERE tenant_id = current_setting('plant.tenant') "
            "AND entry_type = 'map_commit' AND idx >= :low AND idx < :size ORDER BY idx"
        ),
        {"low": start, "size": size},
    ).all()
    if not rows:
        return
    latest: tuple[int, heads_map.MapCommit] | None = None
    for idx, body in rows:
        try:
            commit = heads_map.decode_commit(bytes(body))
        except heads_map.MalformedCommit as exc:
            invalid(state, idx, f"the map commit at {idx} is malformed: {exc}")
            continue
        if commit.log_size != idx:
            invalid(state, idx, f"the map commit at {idx} says it covers {commit.log_size}")
            continue
        latest = (idx, commit)
    if latest is None:
        return
    before = state.conn.execute(
        text(
            "SELECT max(idx) FROM log_entries WHERE tenant_id = current_setting('plant.tenant') "
            "AND entry_type = 'map_commit' AND idx < :low"
        ),
        {"low": start},
    ).scalar()
    idx, commit = latest
    heads = map_commit.changed_heads(state.conn, 0 if before is None else before + 1, idx)
    state.rows_read += len(heads)
    ordered = sorted(heads.items())
    keys = [head.key for _, head in ordered]
    try:
        nodes = map_nodes.DbMapNodes(state.conn).get_paths(keys)
        paths = sparse_merkle.MemoryNodeStore()
        paths.nodes = dict(nodes)
        proofs = sparse_merkle.prove_many(paths, keys)
    except sparse_merkle.MissingNode as exc:
        invalid(state, idx, f"the stored map lacks a node: {exc}")
        return
    for (entity_id, head), key, proof in zip(ordered, keys, proofs, strict=True):
        value = heads_map.encode_head(head)
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


def replay(state: AuditState, size: int) -> None:
    """Replay entries [0, size): every commit's root, then every stored node."""
    replay = _Replay(state)
    query = _ENTRIES.format(end=copyread.int_literal(size))
    for rows in copyread.copy_batches(state.conn, query, _COLUMNS):
        for row in rows:
            replay.row(row)
    if replay.last == size - 1:  # else the stored map is of a commit the log lacks: named
        _nodes(state, replay)


def _nodes(state: AuditState, replay: _Replay) -> None:
    """Every stored node against the recomputed map at the last commit."""
    stored: dict[sparse_merkle.Address, bytes] = {}
    for rows in copyread.copy_batches(state.conn, _NODES, _NODE_COLUMNS):
        for depth, prefix, node in rows:
            index = int.from_bytes(prefix, "big") >> (8 * len(prefix) - depth) if depth else 0
            stored[(depth, index)] = node
    state.rows_read += len(stored)
    expected = replay.memory.nodes
    for address in sorted(set(stored) | set(expected)):
        if stored.get(address) == expected.get(address):
            continue
        node = expected.get(address) or stored.get(address) or b""
        owner = replay.owners.get(node[1:33]) if node[:1] == sparse_merkle.LEAF else None
        invalid(
            state,
            replay.last,
            f"the stored map node at depth {address[0]} differs from the one the log gives",
            owner,
        )
