"""Database side of the map of heads: its nodes in ``heads_map_nodes`` (migration 0015).

A node at (depth, index) is stored under the prefix of its keys: the first ceil(depth / 8)
bytes, unused low bits zeroed (``plant_map_prefix``). ``DbMapNodes.get_paths`` reads the
paths of many keys in one WITH RECURSIVE statement, walking each key down from the root
while the node it stands on is interior and the child towards the key is not empty: O(log n)
rows per key, nodes shared by several paths read once per key but sent back once. Over
``LEVELWISE`` keys (a seal's) the paths are read a depth at a time instead, one statement per
depth and each node once, however many keys pass through it. Each step
is a LATERAL probe of the primary key (a join let the planner hash the tenant's whole map)
comparing columns with plain values of the walk's row, its child's address (``next_depth``,
``next_prefix``): under row-level security PostgreSQL 15 does not make a comparison with an
expression over the row (``depth = w.depth + 1``: ``+`` is not leakproof) an index condition,
and each step then read the tenant's whole map (27 s a key at 1,000,000 entities, as the
application role; 16 plans it as a probe).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence

from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared.integrity.sparse_merkle import DEPTH, EMPTY, INTERIOR, Address
from shared.storage import copyread

_ZERO = "decode(repeat('00', 32), 'hex')"
# One value back: per node its depth (2 bytes), its prefix padded to 32 bytes, its 65 bytes.
_PATHS = text(
    f"""
WITH RECURSIVE keys(k) AS (
  SELECT substring(CAST(:keys AS bytea) FROM 32 * i + 1 FOR 32)
  FROM generate_series(0, CAST(:n AS integer) - 1) AS i
), walk(k, depth, prefix, node, next_depth, next_prefix) AS (
  SELECT keys.k, CAST(0 AS smallint), m.prefix, m.node, CAST(1 AS smallint),
         plant_map_prefix(keys.k, 1) FROM keys JOIN heads_map_nodes m
    ON m.tenant_id = current_setting('plant.tenant') AND m.depth = 0 AND m.prefix = ''::bytea
  UNION ALL
  SELECT w.k, w.next_depth, m.prefix, m.node, CAST(w.next_depth + 1 AS smallint),
         plant_map_prefix(w.k, least(w.next_depth + 1, 256))
    FROM walk w CROSS JOIN LATERAL (
    SELECT prefix, node FROM heads_map_nodes
    WHERE tenant_id = current_setting('plant.tenant') AND depth = w.next_depth
      AND prefix = w.next_prefix LIMIT 1) AS m
  WHERE w.depth < 256 AND get_byte(w.node, 0) = 3
    AND substring(w.node FROM 2 + 32 * ((get_byte(w.k, w.depth / 8) >> (7 - mod(w.depth, 8))) & 1)
                  FOR 32) <> {_ZERO}
)
SELECT coalesce(string_agg(int2send(CAST(depth AS smallint))
  || overlay({_ZERO} PLACING prefix FROM 1) || node, ''::bytea), ''::bytea)
FROM (SELECT DISTINCT depth, prefix, node FROM walk) AS found
"""
)
_RECORD = 2 + 32 + 65
# One depth's nodes: per node found, its position among the prefixes asked (4 bytes) and its
# 65 bytes. The prefix is a column of the OFFSET 0 subquery, so the probe compares plain values.
_LEVEL = text(
    "SELECT coalesce(string_agg(int4send(p.n) || m.node, ''::bytea), ''::bytea) FROM ("
    "SELECT CAST(n AS integer) AS n, substring(CAST(:prefixes AS bytea) "
    "FROM CAST(:width AS integer) * n + 1 FOR CAST(:width AS integer)) AS prefix "
    "FROM generate_series(0, CAST(:n AS integer) - 1) AS n OFFSET 0) AS p "
    "CROSS JOIN LATERAL (SELECT node FROM heads_map_nodes "
    "WHERE tenant_id = current_setting('plant.tenant') AND depth = CAST(:depth AS smallint) "
    "AND prefix = p.prefix LIMIT 1) AS m"
)
LEVELWISE = 256  # more keys than this: their paths are read a depth at a time

_UPSERT = text(
    "INSERT INTO heads_map_nodes (tenant_id, depth, prefix, node) "
    "SELECT current_setting('plant.tenant'), d, "
    "substring(CAST(:prefixes AS bytea) FROM CAST(32 * n - 31 AS integer) FOR (d + 7) / 8), "
    "substring(CAST(:nodes AS bytea) FROM CAST(65 * n - 64 AS integer) FOR 65) "
    "FROM unnest(CAST(:depths AS smallint[])) WITH ORDINALITY AS t(d, n) "
    "ON CONFLICT (tenant_id, depth, prefix) DO UPDATE SET node = EXCLUDED.node"
)


def prefix(depth: int, index: int) -> bytes:
    """The stored prefix of the node at (depth, index): its first ``depth`` key bits,
    left-aligned in ceil(depth / 8) bytes."""
    size = (depth + 7) // 8
    return (index << (8 * size - depth)).to_bytes(size, "big") if depth else b""


class DbMapNodes:
    """A ``sparse_merkle.NodeStore`` over the transaction's tenant's stored map."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.rows_read = 0
        self.queries = 0

    def get_paths(self, keys: Sequence[bytes]) -> Mapping[Address, bytes]:
        if not keys:
            return {}
        if len(keys) > LEVELWISE:
            return self._levelwise(keys)
        packed = bytes(
            self.conn.execute(_PATHS, {"keys": b"".join(keys), "n": len(keys)}).scalar_one()
        )
        self.queries += 1
        out = split_paths(packed)
        self.rows_read += len(out)
        return out

    def _levelwise(self, keys: Sequence[bytes]) -> dict[Address, bytes]:
        """The same nodes as the walk, read a depth at a time: one statement per depth, each
        node once however many keys pass through it (a seal's 10,000 keys into a map of
        1,000,000 share their first ~13 levels: ~99,000 probes instead of ~220,000)."""
        ints = sorted({int.from_bytes(k, "big") for k in keys})
        out: dict[Address, bytes] = {}
        frontier = [(0, 0, len(ints))]  # (index at this depth, keys [lo, hi) beneath it)
        depth = 0
        while frontier:
            found = self._level(depth, [index for index, _, _ in frontier])
            below = []
            for n, (index, lo, hi) in enumerate(frontier):
                node = found.get(n)
                if node is None:
                    continue
                out[(depth, index)] = node
                if node[:1] != INTERIOR or depth == DEPTH:
                    continue
                mid = bisect_left(ints, (index << 1 | 1) << (DEPTH - 1 - depth), lo, hi)
                if mid > lo and node[1:33] != EMPTY:
                    below.append((index << 1, lo, mid))
                if hi > mid and node[33:65] != EMPTY:
                    below.append((index << 1 | 1, mid, hi))
            frontier, depth = below, depth + 1
        self.rows_read += len(out)
        return out

    def _level(self, depth: int, indices: list[int]) -> dict[int, bytes]:
        """The stored nodes at ``depth`` of these indices, by position in ``indices``."""
        width = (depth + 7) // 8
        packed = bytes(
            self.conn.execute(
                _LEVEL,
                {
                    "prefixes": b"".join(prefix(depth, i) for i in indices),
                    "width": width,
                    "n": len(indices),
                    "depth": depth,
                },
            ).scalar_one()
        )
        self.queries += 1
        return {
            int.from_bytes(packed[at : at + 4], "big"): packed[at + 4 : at + 69]
            for at in range(0, len(packed), 69)
        }


def split_paths(packed: bytes) -> dict[Address, bytes]:
    """The nodes of one packed value (per node: its depth in 2 bytes, its prefix padded to
    32 bytes, its 65 bytes), by address."""
    out: dict[Address, bytes] = {}
    for at in range(0, len(packed), _RECORD):
        depth = int.from_bytes(packed[at : at + 2], "big")
        index = int.from_bytes(packed[at + 2 : at + 34], "big") >> (256 - depth)
        out[(depth, index)] = packed[at + 34 : at + _RECORD]
    return out


def write(conn: Connection, written: Mapping[Address, bytes]) -> None:
    """Store (insert or overwrite) the nodes a seal's update wrote, ``copyread.RANGE`` a
    statement; depths go as an array literal, prefixes and nodes each as one value."""
    items = sorted(written.items())
    for low in range(0, len(items), copyread.RANGE):
        chunk = items[low : low + copyread.RANGE]
        if any(len(node) != 65 for _, node in chunk):
            raise ValueError("a map node is 65 bytes")
        conn.execute(
            _UPSERT,
            {
                "depths": "{" + ",".join(str(d) for (d, _), _ in chunk) + "}",
                "prefixes": b"".join(prefix(d, i).ljust(32, b"\0") for (d, i), _ in chunk),
                "nodes": b"".join(node for _, node in chunk),
            },
        )
