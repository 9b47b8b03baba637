"""The nodes pass: the stored subtree hashes (``log_nodes``) are exactly those the sealed tree
has. A subtree missing inside the latest checkpoint's size, or stored past it (no seal writes
one before it covers it), is named by its (level, index), never left to break a proof."""

from __future__ import annotations

from shared.audit.state import AuditState
from shared.integrity import merkle
from shared.storage import copyread, tree


def checked(state: AuditState, start: int, size: int) -> None:
    """Nodes stored past ``size`` (the latest checkpoint's), and nodes of the tree of
    ``size`` leaves touching [start, size) that are not stored."""
    for level, index in tree.nodes_beyond(state.conn, size):
        state.add(
            "inserted",
            f"subtree ({level}, {index}) is stored past the sealed size {size}",
            section="log_nodes",
            extra={"level": level, "node_index": index},
        )
    for level, index in tree.nodes_absent(state.conn, start, size):
        state.add(
            "missing",
            f"subtree ({level}, {index}) of the tree of size {size} is not stored",
            section="log_nodes",
            extra={"level": level, "node_index": index},
        )


# One level's stored nodes of the tree of ``size`` leaves, from the one before the first whose
# range ends past ``start`` (so that the children of each node checked are read too). The
# bounds are computed here: under row-level security a shift of a column is no index condition.
_LEVEL = (
    "SELECT idx, hash FROM log_nodes WHERE tenant_id = current_setting('plant.tenant') "
    "AND level = {level} AND idx >= {low} AND idx < {high} ORDER BY idx"
)
_LEVEL_COLUMNS = (copyread.INT8, copyread.BYTEA)


def _level(state: AuditState, level: int, start: int, size: int) -> dict[int, bytes]:
    low, high = max((start >> level) - 1, 0), size >> level
    query = _LEVEL.format(
        level=level, low=copyread.int_literal(low), high=copyread.int_literal(high)
    )
    found = {
        int(index): bytes(hashed)
        for rows in copyread.copy_batches(state.conn, query, _LEVEL_COLUMNS)
        for index, hashed in rows
    }
    state.rows_read += len(found)
    return found


def consistent(state: AuditState, start: int, size: int) -> None:
    """Each stored node above level 0 of the tree of ``size`` leaves that ends past ``start``
    is the hash of its two stored children (the level-0 ones are checked against the bytes by
    the entries pass): a node altered is named by its (level, index), the lowest one only,
    since the node above an altered one is intact (so this runs after the passes that name
    entries). Proofs served to clients and the next seal are built from these nodes."""
    if size <= start:
        return
    # a level at a time, read by COPY: two levels are held, never the whole tree
    below = _level(state, 0, start, size)
    # leaves already named (an entry, or its stored hash): the node above them is not
    bad_below = set(state.reported) | {
        f.extra["node_index"]
        for f in state.findings
        if f.section == "log_nodes" and f.extra.get("level") == 0
    }
    for level in range(1, size.bit_length() + 1):
        here, bad_here = _level(state, level, start, size), set()
        # those ending past ``start`` whose two children are stored (``checked`` names others)
        indexes = [
            index
            for index in sorted(here)
            if (index + 1) << level > start and 2 * index in below and 2 * index + 1 in below
        ]
        if not _all_intact(below, here, indexes):
            for index in indexes:
                left, right = 2 * index, 2 * index + 1
                if merkle.node_hash(below[left], below[right]) == here[index]:
                    continue
                bad_here.add(index)
                if left in bad_below or right in bad_below:
                    continue  # a child is the one altered
                _altered(state, level, index)
        below, bad_below = here, bad_here


def _all_intact(below: dict[int, bytes], here: dict[int, bytes], indexes: list[int]) -> bool:
    """Whether each of these nodes is the hash of its two children, the level hashed at once
    (``merkle.node_hashes``): the usual answer, for which no node is looked at alone. Only
    where every node and child is a 32-byte hash (else the joined bytes could line up across
    values of other lengths)."""
    pairs = [below[2 * index] + below[2 * index + 1] for index in indexes]
    nodes = [here[index] for index in indexes]
    if not set(map(len, pairs)) <= {64} or not set(map(len, nodes)) <= {32}:
        return False
    return merkle.node_hashes(b"".join(pairs)) == b"".join(nodes)


def _altered(state: AuditState, level: int, index: int) -> None:
    state.add(
        "altered",
        f"subtree ({level}, {index}) is not the hash of its two children",
        section="log_nodes",
        extra={"level": level, "node_index": index},
    )
