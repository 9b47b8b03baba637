"""The nodes pass: the stored subtree hashes (``log_nodes``) are exactly those the sealed tree
has. A subtree missing inside the latest checkpoint's size, or stored past it (no seal writes
one before it covers it), is named by its (level, index), never left to break a proof."""

from __future__ import annotations

from shared.audit.state import AuditState
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
