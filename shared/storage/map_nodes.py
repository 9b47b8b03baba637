"""Database side of the map of heads: its strata in ``heads_map_strata`` (migration 0025).

Each row is one 8-level stratum of a tenant's map, keyed by its prefix (``map_strata`` has the
layout). ``DbMapNodes.get_paths`` reads the strata on the paths of many keys a level of strata
at a time: the root stratum, then for each key whose path leaves the bottom of the stratum it
stands in, the stratum under the key's next byte; one statement a level (four at 1,000,000
keys), each stratum once however many keys pass through it. ``update`` rewrites the strata
on the changed keys' paths (``map_update``) and upserts those rows, one row per stratum.

Row-level security (PostgreSQL 15): each probe is a LATERAL subquery comparing the primary
key's columns with plain columns of an ``OFFSET 0`` subquery (the prefixes asked). PostgreSQL
15 does not make a comparison with a non-leakproof expression over the outer row (``depth =
w.depth + 1``: ``+`` is not leakproof) an index condition under the tenant-isolation policy,
and such a probe read the tenant's whole map (27 s a key at 1,000,000 entities as the
application role, when the map was stored a node per row; 16 plans it as a probe).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared.integrity.sparse_merkle import DEPTH, EMPTY, LEAF, Address
from shared.storage import copyread, map_strata, map_update, staging

# The strata of the prefixes asked (all ``width`` bytes long), those that exist.
_PROBE = (
    "SELECT p.prefix, s.nodes FROM (SELECT substring({prefixes} FROM {width} * n + 1 "
    "FOR {width}) AS prefix FROM generate_series(0, {last}) AS n OFFSET 0) AS p "
    "CROSS JOIN LATERAL (SELECT nodes FROM heads_map_strata "
    "WHERE tenant_id = current_setting('plant.tenant') AND prefix = p.prefix LIMIT 1) AS s"
)
_COLUMNS = (copyread.BYTEA, copyread.BYTEA)
# Rows up to 8160 bytes stay in the staging table's pages as they came: a stratum of ~2.3 KB
# would otherwise be compressed by pglz on its way in (and decompressed on its way out) above
# the default 2 KB, the server's CPU for nothing (~0.2-0.3 s a seal of 10,000 into 1,000,000).
_STAGE = text(
    "CREATE TEMPORARY TABLE plant_strata (prefix bytea NOT NULL, nodes bytea NOT NULL) "
    "WITH (toast_tuple_target = 8160) ON COMMIT DROP"
)
_UPSERT = text(
    "INSERT INTO heads_map_strata (tenant_id, prefix, nodes) "
    "SELECT current_setting('plant.tenant'), prefix, nodes FROM pg_temp.plant_strata "
    "ON CONFLICT (tenant_id, prefix) DO UPDATE SET nodes = EXCLUDED.nodes"
)
_UNSTAGE = text("DROP TABLE pg_temp.plant_strata")


def read(conn: Connection, prefixes: Iterable[bytes], into: map_strata.Strata) -> int:
    """Add to ``into`` the stored strata of these prefixes that exist (a statement per
    prefix length and ``copyread.RANGE`` prefixes); returns how many were found."""
    by_width: dict[int, list[bytes]] = {}
    for prefix in prefixes:
        by_width.setdefault(len(prefix), []).append(prefix)
    found = 0
    for width, asked in sorted(by_width.items()):
        for low in range(0, len(asked), copyread.RANGE):
            chunk = asked[low : low + copyread.RANGE]
            query = _PROBE.format(
                prefixes=copyread.bytea_literal(b"".join(chunk)),
                width=copyread.int_literal(width),
                last=copyread.int_literal(len(chunk) - 1),
            )
            for rows in copyread.copy_batches(conn, query, _COLUMNS):
                for prefix, nodes in rows:
                    into.add(prefix, nodes)
                    found += 1
    return found


class DbMapNodes:
    """A ``sparse_merkle.NodeStore`` over the transaction's tenant's stored map; it keeps
    the strata it read (``strata``) so that ``update`` can rewrite them whole."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.strata = map_strata.Strata()
        self.rows_read = 0  # strata
        self.queries = 0

    def get_paths(self, keys: Sequence[bytes]) -> Mapping[Address, bytes]:
        """Every stored node of the strata on these keys' paths (a superset of the paths),
        a level of strata at a time."""
        ints = sorted({int.from_bytes(k, "big") for k in keys})
        strata = self.strata
        level, going = 0, ints
        asked = [b""]
        while asked and level * map_strata.HEIGHT <= DEPTH:
            new = [p for p in dict.fromkeys(asked) if p not in strata.rows]
            if new:
                self.rows_read += read(self.conn, new, strata)
                self.queries += 1
            bottom = (level + 1) * map_strata.HEIGHT - 1  # the stratum's deepest level
            below, asked = [], []
            for k in going:
                node = strata.get((bottom, k >> (DEPTH - bottom))) if bottom < DEPTH else None
                if node is None or node[:1] == LEAF:
                    continue
                bit = (k >> (DEPTH - 1 - bottom)) & 1
                if node[1 + 32 * bit : 33 + 32 * bit] != EMPTY:
                    below.append(k)
                    asked.append((k >> (DEPTH - 8 * (level + 1))).to_bytes(level + 1, "big"))
            level, going = level + 1, below
        return strata

    def get_nodes(self, addresses: Iterable[Address]) -> Mapping[Address, bytes]:
        """The strata holding these nodes, read (those not read yet) into ``strata``."""
        new = {map_strata.locate(*a)[0] for a in addresses} - set(self.strata.rows)
        if new:
            self.rows_read += read(self.conn, sorted(new), self.strata)
            self.queries += 1
        return self.strata

    def update(self, digests: Mapping[bytes, bytes]) -> bytes:
        """Set each key to its value hash and store the strata rewritten (``map_update``:
        each stratum read with the new nodes put in, or those nodes alone where none was
        stored), one upsert; the new root."""
        self.get_paths(list(digests) or [EMPTY])
        root, rewritten = map_update.update(self.strata, digests)
        upsert(self.conn, rewritten)
        for prefix, data in rewritten:
            self.strata.put(prefix, data)
        return root


def upsert(conn: Connection, strata: Sequence[tuple[bytes, bytes]]) -> None:
    """Insert or overwrite these (prefix, stored bytes) strata in one statement, copied in
    first (binary COPY into a temporary table: ~25 MB for a seal of 10,000 keys into
    1,000,000, which as bind parameters went as twice as much hex)."""
    if not strata:
        return
    conn.execute(_STAGE)
    payload = staging.payload(
        staging.row((staging.field(prefix), staging.field(data))) for prefix, data in strata
    )
    staging.copy_in(conn, "pg_temp.plant_strata", ("prefix", "nodes"), payload)
    conn.execute(_UPSERT)
    conn.execute(_UNSTAGE)
