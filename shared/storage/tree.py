"""Database side of the Merkle log: stored subtree hashes, leaves and checkpoints.

Reads go through ``DbNodes.get_nodes``, one query per batch of (level, index) keys, so the
integrity code decides exactly which O(log n) rows a root or proof needs.
"""

from __future__ import annotations

import itertools
import struct
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared.storage import copyread

Key = tuple[int, int]


_LEVEL_SHIFT = 56
_INDEX_MASK = (1 << _LEVEL_SHIFT) - 1
# The hashes of the keys asked for, in the order asked, with how many were found and their
# shortest and longest length (migration 0026): when every key was found and every hash is 32
# bytes, hash i is bytes [32i, 32i + 32), so no key is decoded.
_HASHES = text("SELECT * FROM plant_node_hashes(CAST(:keys AS bigint[]))")
# Otherwise (a node not stored, or one rewritten to another length by someone who got past the
# table's CHECK) the keyed read: per node its key (8 bytes, big-endian), the hash's length
# (4 bytes) and the hash, as one value (the driver's per-row work was most of a proof's cost).
# The length is read, not assumed, so such a node cannot shift the nodes after it.
_NODES = text(
    "SELECT coalesce(string_agg(int8send(node_key) || int4send(length(hash)) || hash, "
    "''::bytea), ''::bytea) FROM plant_nodes(CAST(:keys AS bigint[]))"
)


_RECORD = struct.Struct(">qi32s")  # a node as stored: every hash is 32 bytes (CHECK)


def split_nodes(packed: bytes) -> dict[Key, bytes]:
    """The nodes of one ``_NODES`` value by key.

    When every record read at a multiple of 44 bytes says its hash is 32 bytes long, the
    records are exactly those a length-by-length walk finds, so they are split in one pass;
    any other length (a node rewritten past the CHECK) takes the walk, record by record.
    """
    if len(packed) % _RECORD.size == 0:
        records = list(_RECORD.iter_unpack(packed))
        if all(length == 32 for _, length, _ in records):
            return {(key >> _LEVEL_SHIFT, key & _INDEX_MASK): node for key, _, node in records}
    out = {}
    at = 0
    while at < len(packed):
        key = int.from_bytes(packed[at : at + 8], "big")
        end = at + 12 + int.from_bytes(packed[at + 8 : at + 12], "big")
        out[(key >> _LEVEL_SHIFT, key & _INDEX_MASK)] = packed[at + 12 : end]
        at = end
    return out


class DbNodes:
    """A NodeReader over ``log_nodes`` for the transaction's tenant; counts what it reads."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.rows_read = 0
        self.queries = 0

    def get_nodes(self, keys: Sequence[Key]) -> Mapping[Key, bytes]:
        if not keys:
            return {}
        # Keys go as one array literal: the driver converts a long list element by element.
        packed = "{" + ",".join(str(level << _LEVEL_SHIFT | idx) for level, idx in keys) + "}"
        found, shortest, longest, hashes = self.conn.execute(_HASHES, {"keys": packed}).one()
        self.queries += 1
        if found == len(keys) and shortest == longest == 32:
            value = bytes(hashes)
            self.rows_read += found
            return dict(
                zip(keys, [value[at : at + 32] for at in range(0, 32 * found, 32)], strict=True)
            )
        packed_nodes = bytes(self.conn.execute(_NODES, {"keys": packed}).scalar_one())
        self.queries += 1
        out = split_nodes(packed_nodes)
        self.rows_read += len(out)
        return out


class CachedNodes:
    """Proofs for clients: stored subtree hashes never change once written (append-only,
    enforced by trigger), so they are kept in a bounded per-process cache, keyed by tenant.

    Only for proofs served to clients, who verify them against a signed checkpoint; audits,
    seals and certification checks read the database itself (``DbNodes``), so tampering is
    always measured against what is stored now.
    """

    def __init__(self, base: DbNodes, scope: str, cache: NodeCache) -> None:
        self.base = base
        self.scope = scope  # database and tenant
        self.cache = cache

    def get_nodes(self, keys: Sequence[Key]) -> Mapping[Key, bytes]:
        found, missing = self.cache.lookup(self.scope, keys)
        if missing:
            fetched = self.base.get_nodes(missing)
            self.cache.store(self.scope, fetched)
            found.update(fetched)
        return found


class NodeCache:
    """A bounded map of (scope, level, index) -> hash; oldest entries go first."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._nodes: dict[tuple[str, int, int], bytes] = {}
        self._lock = threading.Lock()

    def lookup(self, scope: str, keys: Sequence[Key]) -> tuple[dict[Key, bytes], list[Key]]:
        found: dict[Key, bytes] = {}
        missing: list[Key] = []
        nodes = self._nodes
        for key in keys:
            value = nodes.get((scope, *key))
            if value is None:
                missing.append(key)
            else:
                found[key] = value
        return found, missing

    def store(self, scope: str, nodes: Mapping[Key, bytes]) -> None:
        with self._lock:
            for (level, idx), value in nodes.items():
                self._nodes[(scope, level, idx)] = value
            overflow = len(self._nodes) - self.capacity
            if overflow > 0:  # dicts keep insertion order: drop the oldest
                for old in list(itertools.islice(self._nodes, overflow)):
                    del self._nodes[old]


class OverlayNodes:
    """Nodes not yet written (a seal in progress) in front of a reader."""

    def __init__(self, base: DbNodes, extra: Mapping[Key, bytes]) -> None:
        self.base = base
        self.extra = extra

    def get_nodes(self, keys: Sequence[Key]) -> Mapping[Key, bytes]:
        found = {k: self.extra[k] for k in keys if k in self.extra}
        missing = [k for k in keys if k not in found]
        found.update(self.base.get_nodes(missing))
        return found


PROOF_CACHE = NodeCache()


def proof_nodes(conn: Connection, tenant: str) -> CachedNodes:
    """The reader for proofs served to clients (see ``CachedNodes``)."""
    return CachedNodes(DbNodes(conn), f"{conn.engine.url.database}/{tenant}", PROOF_CACHE)


def insert_nodes(conn: Connection, nodes: Sequence[tuple[int, int, bytes]]) -> None:
    """Store new subtree hashes, ``copyread.RANGE`` a statement (a first seal of a million
    leaves writes two million nodes). Keys go as array literals and the hashes as one
    concatenated value the statement slices: pg8000 would convert a list of hashes into an
    array literal a character at a time."""
    for low in range(0, len(nodes), copyread.RANGE):
        chunk = nodes[low : low + copyread.RANGE]
        if any(len(n[2]) != 32 for n in chunk):
            raise ValueError("a subtree hash is 32 bytes")
        conn.execute(
            _INSERT_NODES,
            {
                "levels": "{" + ",".join(str(n[0]) for n in chunk) + "}",
                "idx": "{" + ",".join(str(n[1]) for n in chunk) + "}",
                "hashes": b"".join(n[2] for n in chunk),
            },
        )


_INSERT_NODES = text(
    "INSERT INTO log_nodes (tenant_id, level, idx, hash) "
    "SELECT current_setting('plant.tenant'), l, i, substring(CAST(:hashes AS bytea) "
    "FROM CAST(32 * n - 31 AS integer) FOR 32) FROM unnest(CAST(:levels AS smallint[]), "
    "CAST(:idx AS bigint[])) WITH ORDINALITY AS t(l, i, n)"
)


def nodes_beyond(conn: Connection, size: int) -> list[Key]:
    """Stored subtrees not wholly inside the first ``size`` leaves, (level, index): none is
    ever written before a seal covers it, so any is an insertion. (level, idx) lies inside
    iff idx < size >> level: one index probe per level (at most 100 named a level). Each
    level's bounds are columns of their own (``OFFSET 0`` keeps them so): under row-level
    security PostgreSQL 15 does not make a comparison with a cast or shift of the outer row
    (not leakproof) an index condition, and each level read the tenant's whole tree (past
    the statement timeout at 1,000,000 leaves, as the application role)."""
    rows = conn.execute(
        text(
            "SELECT g.l, n.idx FROM (SELECT CAST(l AS smallint) AS l, "
            "CAST(:size AS bigint) >> l AS low FROM generate_series(0, 63) AS l OFFSET 0) AS g "
            "CROSS JOIN LATERAL (SELECT idx FROM log_nodes "
            "WHERE tenant_id = current_setting('plant.tenant') AND level = g.l AND idx >= g.low "
            "ORDER BY idx LIMIT 100) AS n ORDER BY g.l, n.idx"
        ),
        {"size": size},
    ).all()
    return [(int(r[0]), int(r[1])) for r in rows]


def nodes_absent(conn: Connection, start: int, size: int) -> list[Key]:
    """The subtrees a tree of ``size`` leaves stores whose leaves are not all before
    ``start``, (level, index), that are not stored: counted per level first (an index-only
    scan; the bounds are plain columns, as in ``nodes_beyond``), then named on the levels
    whose count is short."""
    counts = conn.execute(
        text(
            "SELECT g.l, (SELECT count(*) FROM log_nodes WHERE tenant_id = "
            "current_setting('plant.tenant') AND level = g.l AND idx >= g.low AND idx < g.high) "
            "FROM (SELECT CAST(l AS smallint) AS l, CAST(:start AS bigint) >> l AS low, "
            "CAST(:size AS bigint) >> l AS high FROM generate_series(0, 62) AS l "
            "WHERE (CAST(:size AS bigint) >> l) > 0 OFFSET 0) AS g"
        ),
        {"start": start, "size": size},
    ).all()
    absent: list[Key] = []
    for level, count in counts:
        low, high = start >> int(level), size >> int(level)
        if int(count) == high - low:
            continue
        absent += [
            (int(level), int(r[0]))
            for r in conn.execute(
                text(
                    "SELECT g FROM generate_series(CAST(:low AS bigint), CAST(:high AS bigint) - 1)"
                    " AS g WHERE NOT EXISTS (SELECT 1 FROM log_nodes WHERE tenant_id = "
                    "current_setting('plant.tenant') AND level = :level AND idx = g) LIMIT 100"
                ),
                {"low": low, "high": high, "level": int(level)},
            )
        ]
    return absent


def log_size(conn: Connection) -> int:
    """Committed size of the tenant's log (entries 0..size-1 all exist)."""
    size = conn.execute(
        text("SELECT size FROM log_heads WHERE tenant_id = current_setting('plant.tenant')")
    ).scalar()
    return int(size or 0)


def leaf_hashes(conn: Connection, start: int, end: int) -> list[bytes]:
    """Stored leaf hashes of entries [start, end), in index order: binary COPY, one
    statement per ``copyread.RANGE`` entries (a first seal of a million entries as one
    query of pg8000 rows outlasted the statement timeout)."""
    indices: list[int] = []
    leaves: list[bytes] = []
    for low in range(start, end, copyread.RANGE):
        query = (
            "SELECT idx, leaf_hash FROM log_entries "
            "WHERE tenant_id = current_setting('plant.tenant') "
            f"AND idx >= {copyread.int_literal(low)} "
            f"AND idx < {copyread.int_literal(min(end, low + copyread.RANGE))} ORDER BY idx"
        )
        for rows in copyread.copy_batches(conn, query, _LEAF_COLUMNS):
            indices.extend(r[0] for r in rows)
            leaves.extend(r[1] for r in rows)
    if len(indices) != end - start or indices != list(range(start, end)):
        raise LogGap(start, end, indices)
    return leaves


_LEAF_COLUMNS = (copyread.INT8, copyread.raw(32))


class LogGap(Exception):
    """Entries that must exist are missing: the ledger was tampered with."""

    def __init__(self, start: int, end: int, present: list[int]) -> None:
        have = set(present)
        self.missing = [i for i in range(start, end) if i not in have][:100]
        super().__init__(f"log entries missing in [{start}, {end}): {self.missing[:10]}")


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: str


def latest_checkpoint(conn: Connection) -> StoredCheckpoint | None:
    row = conn.execute(
        text(
            "SELECT size, root, note FROM checkpoints "
            "WHERE tenant_id = current_setting('plant.tenant') ORDER BY size DESC LIMIT 1"
        )
    ).first()
    return StoredCheckpoint(int(row[0]), bytes(row[1]), row[2]) if row else None


def checkpoint_at(conn: Connection, size: int) -> StoredCheckpoint | None:
    row = conn.execute(
        text(
            "SELECT size, root, note FROM checkpoints "
            "WHERE tenant_id = current_setting('plant.tenant') AND size = :size"
        ),
        {"size": size},
    ).first()
    return StoredCheckpoint(int(row[0]), bytes(row[1]), row[2]) if row else None


def insert_checkpoint(conn: Connection, size: int, root: bytes, note: str) -> None:
    conn.execute(
        text(
            "INSERT INTO checkpoints (tenant_id, size, root, note) VALUES "
            "(current_setting('plant.tenant'), :size, :root, :note)"
        ),
        {"size": size, "root": root, "note": note},
    )


def lock_sealer(conn: Connection) -> None:
    """Serialise sealers of one tenant for the rest of the transaction."""
    conn.execute(
        text(
            "SELECT pg_advisory_xact_lock("
            "hashtext('plant-seal:' || current_setting('plant.tenant')))"
        )
    )


def index_of_leaf(conn: Connection, leaf_hash: bytes, size: int) -> int | None:
    """The first index below ``size`` whose leaf hash is ``leaf_hash``."""
    found = conn.execute(
        text(
            "SELECT min(idx) FROM log_entries WHERE tenant_id = current_setting('plant.tenant') "
            "AND leaf_hash = :leaf AND idx < :size"
        ),
        {"leaf": leaf_hash, "size": size},
    ).scalar()
    return int(found) if found is not None else None
