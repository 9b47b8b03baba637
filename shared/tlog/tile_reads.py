"""The tenant's log as C2SP tlog-tiles, read from the database (``/log/tiles/{tenant}/...``).

Hash i of tile N at level L is the stored node (8L, 256N + i) (``shared.integrity.tiles``);
an entry bundle is the stored entry bytes of tile N's leaves, each after its uint16 length.
Only tiles inside the latest checkpoint's tree are served, so a reader never sees a hash the
log has not signed a root over.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared.errors import Forbidden, NotFound
from shared.integrity import merkle, tiles
from shared.security.principal import READ_ROLES, Principal
from shared.storage import cosignatures, tree
from shared.storage.engine import database

_ENTRIES = text(
    "SELECT body FROM log_entries WHERE tenant_id = current_setting('plant.tenant') "
    "AND idx >= :low AND idx < :high ORDER BY idx"
)


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
    first = wanted.index * tiles.TILE_WIDTH
    if wanted.level is None:
        rows = conn.execute(_ENTRIES, {"low": first, "high": first + wanted.width}).all()
        if len(rows) != wanted.width:
            return None
        return tiles.encode_bundle([bytes(r[0]) for r in rows])
    keys = [(8 * wanted.level, first + i) for i in range(wanted.width)]
    nodes = reader.get_nodes(keys)
    if len(nodes) != len(keys):
        return None
    return b"".join(nodes[k] for k in keys)
