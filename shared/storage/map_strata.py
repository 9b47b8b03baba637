"""The map of heads as stored: strata of 8 levels, one row per 256-wide subtree (issue 24).

A seal of k keys into a map of n rewrites about k (log2(n / k) + 3) nodes; stored a node per
row, that many rows are read and upserted (~101,000 for 10,000 keys into 1,000,000, most of
the seal). Cut into strata of ``HEIGHT`` levels, as tlog tiles cut the log, the same seal
touches about one row per changed key below the top strata (~10,000).

Layout. Stratum ``s`` (0 to 32) under ``prefix`` (the first ``s`` bytes of its keys) holds
the nodes at depths 8s to 8s + 7 whose keys start with ``prefix``: at most 255 addresses,
numbered as in a binary heap (``position``: 1 for the node at depth 8s, 2p and 2p + 1 for the
children of p; the node at depth 8s + k whose index ends in the k bits j is 2**k + j). Its
row holds the nodes present, in increasing position, each as one byte of position and its
65 stored bytes (``sparse_merkle``'s hash preimage: 0x02 || key || value hash, or 0x03 ||
left hash || right hash). Nothing else is stored: an interior node's bytes carry its
children's hashes, so the bottom nodes of a stratum commit to the tops of the strata below,
and no hash is recomputed to read a node. Empty subtrees are absent, so a sparse stratum is
a record or three (a 1,000,000-key map's third level holds ~15 keys a row, its fourth 1-3
nodes); a stratum with no node has no row. Since every stored node's ancestors are stored
interior nodes, the strata on a key's path are exactly the rows whose prefixes are
``key[:0]``, ``key[:1]``, ... that exist.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping
from typing import Any

from shared.integrity.sparse_merkle import Address, MissingNode

HEIGHT = 8  # levels a stratum spans: a byte of key a level of strata (``get`` relies on 8)
NODE = 65  # a node's stored bytes
RECORD = 1 + NODE  # its position, then its bytes


class MalformedStratum(MissingNode):
    """A stored stratum that is not whole records in increasing position: its nodes cannot
    be read, as if not stored."""


def locate(depth: int, index: int) -> tuple[bytes, int]:
    """The stratum (its prefix) and position of the node at (depth, index)."""
    level, k = divmod(depth, HEIGHT)
    return (index >> k).to_bytes(level, "big"), (1 << k) | (index & ((1 << k) - 1))


def address(prefix: bytes, position: int) -> Address:
    """The (depth, index) of ``position`` in the stratum under ``prefix``."""
    k = position.bit_length() - 1
    top = int.from_bytes(prefix, "big")
    return HEIGHT * len(prefix) + k, (top << k) | (position ^ (1 << k))


_POSITION = [bytes((p,)) for p in range(1 << HEIGHT)]


def _order(nodes: Mapping[int, bytes]) -> list[int]:
    """The positions of ``nodes``, sorted; ValueError unless there is one, each is 1 to 255
    and each node 65 bytes."""
    order = sorted(nodes)
    if (
        not order
        or order[0] < 1
        or order[-1] >= 1 << HEIGHT
        or {*map(len, nodes.values())} != {NODE}
    ):
        raise ValueError("a stratum holds nodes at positions 1 to 255, each 65 bytes")
    return order


def encode(nodes: Mapping[int, bytes]) -> bytes:
    """A stratum's row from its nodes by position (1 to 255), each 65 bytes."""
    return b"".join([_POSITION[p] + nodes[p] for p in _order(nodes)])


def positions(data: bytes) -> bytes:
    """The positions of a stored stratum's records, one byte each, in their order; raises
    MalformedStratum unless the row is whole records in strictly increasing position."""
    found = data[::RECORD]
    if not data or len(data) % RECORD or found[0] == 0:
        raise MalformedStratum(f"a stratum of {len(data)} bytes is not whole records")
    if bytes(sorted(set(found))) != found:
        raise MalformedStratum("a stratum's positions are not strictly increasing")
    return found


def decode(data: bytes) -> dict[int, bytes]:
    """A stored stratum's nodes by position (``encode`` reversed); MalformedStratum unless
    ``data`` is what ``encode`` writes."""
    return {
        p: data[at + 1 : at + RECORD]
        for p, at in zip(positions(data), range(0, len(data), RECORD), strict=True)
    }


def group(nodes: Mapping[Address, bytes]) -> dict[bytes, dict[int, bytes]]:
    """Nodes by address, as stratum prefix -> position -> node."""
    out: dict[bytes, dict[int, bytes]] = {}
    for (depth, index), node in nodes.items():
        level, k = divmod(depth, HEIGHT)
        prefix = (index >> k).to_bytes(level, "big")
        found = out.get(prefix)
        if found is None:
            found = out[prefix] = {}
        found[(1 << k) | (index & ((1 << k) - 1))] = node
    return out


class Strata(Mapping[Address, bytes]):
    """Stored strata read as the nodes they hold, by address: a node is sliced from its row
    when asked for (a seal's update asks for ~100,000 of the ~400,000 nodes its ~10,000
    strata hold), so a ``NodeStore`` can hand this over as the paths it read. Each row is
    checked whole when added (``positions``)."""

    def __init__(self) -> None:
        self.rows: dict[bytes, bytes] = {}  # prefix -> stored bytes
        self._at: dict[bytes, bytes] = {}  # prefix -> its records' positions

    def add(self, prefix: bytes, data: bytes) -> None:
        """A stratum as read; MalformedStratum when it is not whole records in order."""
        self._at[prefix] = positions(data)
        self.rows[prefix] = data

    def put(self, prefix: bytes, data: bytes) -> None:
        """A stratum as ``encode`` made it (not checked again)."""
        self._at[prefix] = data[::RECORD]
        self.rows[prefix] = data

    def merged(self, prefix: bytes, nodes: Mapping[int, bytes]) -> bytes:
        """The stored bytes of a stratum read or put with ``nodes`` (by position) put in:
        the row's records between them copied as runs, each new one replacing the record at
        its position or inserted in order (what ``encode`` of the merged nodes gives, in
        work proportional to the new ones: a seal's ~100,000 among ~450,000)."""
        data, at = self.rows[prefix], self._at[prefix]
        parts, done = [], 0  # records of ``data`` copied or replaced so far
        for p in _order(nodes):
            i = bisect_left(at, p)
            parts.append(data[done * RECORD : i * RECORD])
            parts.append(_POSITION[p] + nodes[p])
            done = i + 1 if i < len(at) and at[i] == p else i
        parts.append(data[done * RECORD :])
        return b"".join(parts)

    def get(self, address: Address, default: Any = None) -> Any:  # without raising KeyError
        depth, index = address
        k = depth & 7
        prefix = (index >> k).to_bytes(depth >> 3, "big")
        at = self._at.get(prefix)
        if at is not None:
            record = at.find((1 << k) | (index & ((1 << k) - 1)))
            if record >= 0:
                start = record * RECORD + 1
                return self.rows[prefix][start : start + NODE]
        return default

    def __getitem__(self, address: Address) -> bytes:
        node: bytes | None = self.get(address)
        if node is None:
            raise KeyError(address)
        return node

    def __iter__(self) -> Iterator[Address]:
        for prefix, at in self._at.items():
            for position in at:
                yield address(prefix, position)

    def __len__(self) -> int:
        return sum(len(at) for at in self._at.values())
