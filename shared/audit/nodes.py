"""The nodes pass: the stored subtree hashes (``log_nodes``) are exactly those the sealed tree
has. A subtree missing inside the latest checkpoint's size, or stored past it (no seal writes
one before it covers it), is named by its (level, index), never left to break a proof."""

from __future__ import annotations

from sqlalchemy import text

from shared.audit.state import AuditState
from shared.integrity import merkle
from shared.storage import tree


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


# The stored nodes of the tree of :size leaves at each level, from the one before the first
# whose range ends past :start (so that the children of each node checked are read too):
# one statement, each level an index range.
_NODES = text(
    "SELECT p.level, p.idx, p.hash FROM generate_series(0, :top) AS lv(l) "
    "JOIN log_nodes p ON p.tenant_id = current_setting('plant.tenant') AND p.level = lv.l "
    "AND p.idx >= greatest((CAST(:start AS bigint) >> lv.l) - 1, 0) "
    "AND p.idx < (CAST(:size AS bigint) >> lv.l)"
)


def consistent(state: AuditState, start: int, size: int) -> None:
    """Each stored node above level 0 of the tree of ``size`` leaves that ends past ``start``
    is the hash of its two stored children (the level-0 ones are checked against the bytes by
    the entries pass): a node altered is named by its (level, index), the lowest one only,
    since the node above an altered one is intact (so this runs after the passes that name
    entries). Proofs served to clients and the next seal are built from these nodes."""
    if size <= start:
        return
    params = {"top": size.bit_length(), "start": start, "size": size}
    nodes = {
        (int(level), int(index)): bytes(hashed)
        for level, index, hashed in state.conn.execute(_NODES, params)
    }
    state.rows_read += len(nodes)
    # leaves already named (an entry, or its stored hash): the node above them is not
    bad = {(0, index) for index in state.reported} | {
        (0, f.extra["node_index"])
        for f in state.findings
        if f.section == "log_nodes" and f.extra.get("level") == 0
    }
    for level, index in sorted(nodes):
        if level == 0 or (index + 1) << level <= start:
            continue
        left, right = (level - 1, 2 * index), (level - 1, 2 * index + 1)
        if left not in nodes or right not in nodes:
            continue  # named by ``checked``
        if merkle.node_hash(nodes[left], nodes[right]) == nodes[(level, index)]:
            continue
        bad.add((level, index))
        if left in bad or right in bad:
            continue  # a child is the one altered
        state.add(
            "altered",
            f"subtree ({level}, {index}) is not the hash of its two children",
            section="log_nodes",
            extra={"level": level, "node_index": index},
        )
