"""The heads map held in memory while a full audit rebuilds it from the log (issue 27,
decision 3): the project's C extension ``plant_map_native`` (native/, installed by
requirements.txt) when it is importable, else ``PureMap``, its pure-Python twin over
``sparse_merkle``; ``PLANT_AUDIT_PURE=1`` forces the twin. The seal's update over its strata
(``shared.storage.map_update``) chooses between the module and its own twin by ``NATIVE`` too.

Why compiled: at a million heads the map is ~2.4 million nodes; as a dict of Python objects
it took ~550 bytes a key and one interpreter call a hash, most of a full audit's map check.
The C tree holds ~112 bytes a key and hashes with its own SHA-256 (the database computes
nothing the audit trusts). Both give the same roots and the same strata in the same order
(tests/integrity/test_map_memory.py), hence the audit the same findings
(tests/audit/test_compiled_twin.py).

A map takes batches of 64-byte records (a 32-byte key, then the SHA-256 of its value; a key
repeated keeps its last) and answers the root after each; ``strata`` then yields every node
cut as the stored map is (``shared.storage.map_strata``: a row per 8 levels under a prefix),
in the order the audit reads the stored rows: by prefix (a stratum before those under it,
siblings by their next key byte), as (prefix, the row as ``map_strata.encode`` writes it).
So the audit streams the stored strata against these, holding neither (a dict of the ~2.4
million nodes by address added ~430 MB to the peak RSS at 1,000,000 heads). What is
compared, and how, is the audit's business.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import ModuleType
from typing import Protocol

from shared.integrity import sparse_merkle

HEIGHT = 8  # levels a stratum spans (``map_strata.HEIGHT``)


class MemoryMap(Protocol):
    def update(self, records: bytes) -> bytes:
        """Set each record's key to its value hash; the new root."""
        ...

    def put(self, records: bytes) -> None:
        """As ``update``, no root made: a batch put in parts, its last part updated, makes
        the root the whole batch would (each node hashed once)."""
        ...

    def strata(self) -> Iterator[tuple[bytes, bytes]]:
        """(prefix, row): every node, cut into the stored map's strata, by prefix (a
        stratum before those under it), each row as ``map_strata.encode`` writes it."""
        ...


class PureMap:
    """The twin: ``sparse_merkle``'s own update over a ``MemoryNodeStore``; its strata
    walked from the root, each node's children looked up by address."""

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

    def put(self, records: bytes) -> None:
        self.update(records)

    def strata(self) -> Iterator[tuple[bytes, bytes]]:
        nodes, todo = self.store.nodes, [(0, 0)] if (0, 0) in self.store.nodes else []
        while todo:  # the tops of the strata still to read, the next last
            first, top = todo.pop()
            row, level = [], [top]
            for k in range(HEIGHT):
                below = []
                for index in level:
                    node = nodes[(first + k, index)]
                    row.append(bytes((1 << k | index - (top << k),)) + node)
                    if node[:1] == sparse_merkle.INTERIOR:
                        for child in (2 * index, 2 * index + 1):
                            if (first + k + 1, child) in nodes:
                                below.append(child)
                level = below
            yield top.to_bytes(first // HEIGHT, "big"), b"".join(row)
            todo.extend((first + HEIGHT, index) for index in reversed(level))


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
