"""The heads map held in memory while a full audit rebuilds it from the log (issue 27,
decision 3): the project's C extension ``plant_map_native`` (native/, installed by
requirements.txt) when it is importable, else ``PureMap``, its pure-Python twin over
``sparse_merkle``; ``PLANT_AUDIT_PURE=1`` forces the twin. The seal's update over its strata
(``shared.storage.map_update``) chooses between the module and its own twin by ``NATIVE`` too.

Why compiled: at a million heads the map is ~2.4 million nodes; as a dict of Python objects
it took ~550 bytes a key and one interpreter call a hash, most of a full audit's map check.
The C tree holds ~112 bytes a key and hashes with its own SHA-256 (the database computes
nothing the audit trusts). Both give the same roots and the same nodes in the same order
(tests/integrity/test_map_memory.py), hence the audit the same findings
(tests/audit/test_compiled_twin.py).

A map takes batches of 64-byte records (a 32-byte key, then the SHA-256 of its value; a key
repeated keeps its last) and answers the root after each; ``levels`` then yields every node,
a depth at a time in address order, in chunks: (depth, the addresses' bytes, the nodes'
65-byte preimages), each concatenated; an address is the first ``depth`` key bits
left-aligned in ceil(depth / 8) bytes, the rest zero. What is compared with the stored map,
and how, is the audit's business.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from itertools import groupby
from types import ModuleType
from typing import Protocol

from shared.integrity import sparse_merkle

CHUNK = 1 << 16  # nodes a chunk of ``levels`` holds at most


class MemoryMap(Protocol):
    def update(self, records: bytes) -> bytes:
        """Set each record's key to its value hash; the new root."""
        ...

    def levels(self, chunk: int = CHUNK) -> Iterator[tuple[int, bytes, bytes]]:
        """(depth, addresses, nodes) chunks: every node, depth by depth, in address order."""
        ...


def address(depth: int, index: int) -> bytes:
    """The address (depth, index) as bytes: the index's ``depth`` bits, left-aligned."""
    size = (depth + 7) // 8
    return (index << (8 * size - depth)).to_bytes(size, "big") if depth else b""


class PureMap:
    """The twin: ``sparse_merkle``'s own update over a ``MemoryNodeStore``."""

    def __init__(self) -> None:
        self.store = sparse_merkle.MemoryNodeStore()

    def update(self, records: bytes) -> bytes:
        if len(records) % 64:
            raise ValueError("records are 64 bytes: a key, then its value's hash")
        at = range(0, len(records), 64)
        digests = {records[i : i + 32]: records[i + 32 : i + 64] for i in at}
        change = sparse_merkle.update_hashed(self.store, digests)
        self.store.apply(change)
        return change.root

    def levels(self, chunk: int = CHUNK) -> Iterator[tuple[int, bytes, bytes]]:
        if chunk < 1:
            raise ValueError("a chunk holds at least one node")
        ordered = sorted(self.store.nodes.items())
        for depth, group in groupby(ordered, key=lambda item: item[0][0]):
            nodes = list(group)
            for at in range(0, len(nodes), chunk):
                part = nodes[at : at + chunk]
                yield (
                    depth,
                    b"".join(address(depth, index) for (_, index), _ in part),
                    b"".join(node for _, node in part),
                )


def _native() -> ModuleType | None:
    if os.environ.get("PLANT_AUDIT_PURE", "") not in ("", "0"):
        return None
    try:
        import plant_map_native
    except ImportError:
        return None
    return plant_map_native


NATIVE = _native()  # the extension module, or None: every caller's twin is then used


def new(pure: bool = False) -> MemoryMap:
    """An empty map: the compiled one when it is importable and allowed, else the twin."""
    if pure or NATIVE is None:
        return PureMap()
    tree: MemoryMap = NATIVE.Tree()
    return tree
