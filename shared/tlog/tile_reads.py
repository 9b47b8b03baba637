"""The tenant's log as C2SP tlog-tiles, read from the database (``/log/tiles/{tenant}/...``).

Hash i of tile N at level L is the stored node (8L, 256N + i) (``shared.integrity.tiles``);
an entry bundle is the stored entry bytes of tile N's leaves, each after its uint16 length.
Only tiles inside the latest checkpoint's tree are served, so a reader never sees a hash the
log has not signed a root over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from shared.errors import Forbidden, NotFound
from shared.integrity import merkle, tiles
from shared.security.principal import READ_ROLES, Principal
from shared.storage import copyread, cosignatures, tree
from shared.storage.engine import database

_NUMBERED = (  # by binary COPY (``copyread``): pg8000 made a row object of each entry
    "SELECT idx, body FROM log_entries WHERE tenant_id = current_setting('plant.tenant') "
    "AND idx >= {low} AND idx < {high}"
)
BATCH = 64  # tiles ``tiles_data`` reads at once: 16,384 entries or hashes at most


def _reader(principal: Principal, tenant: str) -> None:
    """A reader of this tenant's log: the token's tenant must be the path's."""
    principal.require(*READ_ROLES)
    if principal.tenant != tenant:
        raise Forbidden("the token is for another tenant's log")


def tile_checkpoint(principal: Principal, tenant: str) -> tree.StoredCheckpoint:
    """The latest checkpoint with its stored cosignatures."""
    _reader(principal, tenant)
    with database().transaction(tenant) as conn:
        last = tree.latest_checkpoint(conn)
        if last is None:
            raise NotFound("the log has no checkpoint yet (POST /log/seal)")
        return cosignatures.cosigned(conn, last)


@dataclass(frozen=True)
class TileBytes:
    data: bytes
    full: bool


def tile(principal: Principal, tenant: str, path: str) -> TileBytes:
    """A hash tile or entry bundle by its canonical path (``tile/...``)."""
    _reader(principal, tenant)
    try:
        wanted = tiles.parse_tile_path(path)
    except tiles.TileError as exc:
        raise NotFound(str(exc)) from exc
    with database().transaction(tenant) as conn:
        last = tree.latest_checkpoint(conn)
        if last is None or not inside(wanted, last.size):
            raise NotFound(f"{path} is not inside the latest checkpoint's tree")
        data = tile_data(conn, tree.proof_nodes(conn, tenant), wanted)
    if data is None:
        raise NotFound(f"{path}: stored nodes or entries are missing")
    return TileBytes(data, wanted.full)


def inside(wanted: tiles.Tile, size: int) -> bool:
    """Whether the tree of ``size`` leaves has this tile at this width (or a wider one)."""
    level = wanted.level or 0
    return (wanted.index * tiles.TILE_WIDTH + wanted.width) << (8 * level) <= size


def tile_data(conn: Connection, reader: merkle.NodeReader, wanted: tiles.Tile) -> bytes | None:
    """The bytes of a tile (stored nodes at height 8L) or a bundle (stored entries); None if
    any is missing. The caller checks the tile is inside a checkpoint's tree."""
    return tiles_data(conn, reader, [wanted])[0]


def tiles_data(
    conn: Connection, reader: merkle.NodeReader, wanted: Sequence[tiles.Tile]
) -> list[bytes | None]:
    """``tile_data`` of each tile in order, ``BATCH`` tiles a read: the entries of their
    bundles in one range, the hashes of their hash tiles in one batch (a mirror after a seal
    of 10,000 entries writes ~85 tiles and bundles; a statement each was ~1 s of the seal)."""
    out: list[bytes | None] = []
    for at in range(0, len(wanted), BATCH):
        batch = wanted[at : at + BATCH]
        bundles = [t for t in batch if t.level is None]
        bodies: dict[int, bytes] = {}
        if bundles:
            low = min(t.index * tiles.TILE_WIDTH for t in bundles)
            high = max(t.index * tiles.TILE_WIDTH + t.width for t in bundles)
            query = _NUMBERED.format(low=copyread.int_literal(low), high=copyread.int_literal(high))
            for rows in copyread.copy_batches(conn, query, (copyread.INT8, copyread.BYTEA)):
                bodies.update(rows)
        keys = [
            (8 * t.level, t.index * tiles.TILE_WIDTH + i)
            for t in batch
            if t.level is not None
            for i in range(t.width)
        ]
        nodes = reader.get_nodes(keys)
        for t in batch:
            first = t.index * tiles.TILE_WIDTH
            level = None if t.level is None else 8 * t.level
            found = [
                bodies.get(i) if level is None else nodes.get((level, i))
                for i in range(first, first + t.width)
            ]
            parts = [part for part in found if part is not None]
            if len(parts) != t.width:
                out.append(None)
            else:
                out.append(b"".join(parts) if level is not None else tiles.encode_bundle(parts))
    return out
