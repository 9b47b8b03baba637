"""C2SP tlog-tiles: the log's Merkle tree and entries as static files anyone can mirror.

Paths, under a log's prefix:

- ``checkpoint``: the signed note (C2SP tlog-checkpoint);
- ``tile/<L>/<N>[.p/<W>]``: level L (0..63, decimal, no leading zero) tile number N; N written
  in three-digit groups, every group but the last prefixed ``x`` (1234067 ->
  ``x001/x234/067``, 5 -> ``005``); ``.p/<W>`` (W = 1..255) only for a partial tile;
- ``tile/entries/<N>[.p/<W>]``: the entry bundle beside level-0 tile N.

Bytes: a tile is its hashes concatenated, 32 bytes each, 256 in a full tile (8,192 bytes).
Hash i of tile N at level L is MTH(D[(N*256 + i) * 256**L : (N*256 + i + 1) * 256**L]): at
level 0 the leaf hashes SHA-256(0x00 || entry), above it the root of a *full* tile of the
level below. In ``merkle``'s storage that is node ``(8 * L, N*256 + i)``. An entry bundle
is, per entry in log order, its length as a big-endian uint16 then its bytes: no entry may
exceed 65,535 bytes.

For a tree of size s, level L has floor(s / 256**(L+1)) full tiles and, when
w = floor(s / 256**L) mod 256 is not 0, one partial tile of width w. Empty tiles do not exist.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from shared.integrity import merkle

TILE_WIDTH = 256
HASH_SIZE = 32
MAX_LEVEL = 63
MAX_ENTRY_BYTES = 0xFFFF
ENTRIES = "entries"


class TileError(ValueError):
    """A tile path, tile or entry bundle is malformed, missing or does not match."""


class EntryTooLong(TileError):
    """An entry longer than 65,535 bytes cannot be put in an entry bundle (uint16 length)."""


@dataclass(frozen=True)
class Tile:
    """Tile ``index`` of ``level`` (``None``: the entry bundle), ``width`` hashes (1..256)."""

    level: int | None
    index: int
    width: int = TILE_WIDTH

    @property
    def full(self) -> bool:
        return self.width == TILE_WIDTH

    @property
    def path(self) -> str:
        if self.level is None:
            return entries_path(self.index, self.width)
        return tile_path(self.level, self.index, self.width)


def encode_index(index: int) -> str:
    """N in three-digit groups, all but the last prefixed ``x``: 1234067 -> x001/x234/067."""
    if index < 0:
        raise TileError("a tile index is not negative")
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(groups))


def _suffix(width: int) -> str:
    if not 1 <= width <= TILE_WIDTH:
        raise TileError("a tile's width is 1..256")
    return "" if width == TILE_WIDTH else f".p/{width}"


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """``tile/<L>/<N>[.p/<W>]`` (relative to the log's prefix)."""
    if not 0 <= level <= MAX_LEVEL:
        raise TileError("a tile level is 0..63")
    return f"tile/{level}/{encode_index(index)}{_suffix(width)}"


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    """``tile/entries/<N>[.p/<W>]`` (relative to the log's prefix)."""
    return f"tile/entries/{encode_index(index)}{_suffix(width)}"


_PATH = re.compile(
    r"^tile/(?P<level>entries|0|[1-9][0-9]?)/(?P<index>(?:x[0-9]{3}/)*[0-9]{3})"
    r"(?:\.p/(?P<width>[1-9][0-9]{0,2}))?$"
)


def parse_tile_path(path: str) -> Tile:
    """The tile a path names; only the canonical spelling is accepted (one path per tile)."""
    match = _PATH.match(path)
    if not match:
        raise TileError(f"not a tile path: {path!r}")
    raw_level = match["level"]
    level = None if raw_level == ENTRIES else int(raw_level)
    index = int(match["index"].replace("x", "").replace("/", ""))
    width = int(match["width"]) if match["width"] else TILE_WIDTH
    if (level is not None and level > MAX_LEVEL) or (match["width"] and width >= TILE_WIDTH):
        raise TileError(f"not a tile path: {path!r}")
    tile = Tile(level, index, width)
    if tile.path != path:
        raise TileError(f"not the canonical tile path: {path!r}")
    return tile


def tiles_for_size(size: int) -> list[Tile]:
    """Every hash tile a tree of ``size`` leaves has (levels from 0 up, full then partial)."""
    if size < 0:
        raise TileError("a tree size is not negative")
    out: list[Tile] = []
    level = 0
    while size >> (8 * level):
        count = size >> (8 * level)
        out.extend(Tile(level, n) for n in range(count // TILE_WIDTH))
        if count % TILE_WIDTH:
            out.append(Tile(level, count // TILE_WIDTH, count % TILE_WIDTH))
        level += 1
    return out


def bundles_for_size(size: int) -> list[Tile]:
    """Every entry bundle of a tree of ``size`` leaves (level-0 tile numbers and widths)."""
    return [Tile(None, t.index, t.width) for t in tiles_for_size(size) if t.level == 0]


def new_tiles(old_size: int, new_size: int) -> list[Tile]:
    """Tiles and bundles a mirror writes when the log grows from ``old_size`` to ``new_size``:
    those of ``new_size`` that ``old_size`` did not already have complete (a tile's bytes at a
    given width never change, so nothing else needs rewriting)."""
    if not 0 <= old_size <= new_size:
        raise TileError("need 0 <= old_size <= new_size")
    out: list[Tile] = []
    level = 0
    while new_size >> (8 * level):  # without listing the tiles both sizes share (O(n))
        old, new = old_size >> (8 * level), new_size >> (8 * level)
        out.extend(Tile(level, n) for n in range(old // TILE_WIDTH, new // TILE_WIDTH))
        if new % TILE_WIDTH and new != old:
            out.append(Tile(level, new // TILE_WIDTH, new % TILE_WIDTH))
        level += 1
    return out + [Tile(None, t.index, t.width) for t in out if t.level == 0]


def level_hashes(leaf_hashes: Sequence[bytes], level: int) -> list[bytes]:
    """The hashes of tile level ``level`` of the tree of these leaf hashes: hash j is
    MTH(D[j * 256**level : (j + 1) * 256**level]), complete subtrees only."""
    hashes = list(leaf_hashes)
    for _ in range(level):
        full = len(hashes) // TILE_WIDTH * TILE_WIDTH
        hashes = [
            merkle.root_from_leaves(hashes[i : i + TILE_WIDTH]) for i in range(0, full, TILE_WIDTH)
        ]
    return hashes


def tile_bytes(hashes: Sequence[bytes], tile: Tile) -> bytes:
    """A hash tile's bytes: hashes [index*256, index*256 + width) of its level, concatenated."""
    start = tile.index * TILE_WIDTH
    chosen = hashes[start : start + tile.width]
    if len(chosen) != tile.width or any(len(h) != HASH_SIZE for h in chosen):
        raise TileError(f"the level does not have the {tile.width} hashes of {tile.path}")
    return b"".join(chosen)


def split_tile(data: bytes, width: int = TILE_WIDTH) -> list[bytes]:
    """A hash tile's ``width`` 32-byte hashes; any other length is refused."""
    if not 1 <= width <= TILE_WIDTH or len(data) != width * HASH_SIZE:
        raise TileError(f"a tile of width {width} is {width * HASH_SIZE} bytes, not {len(data)}")
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def encode_bundle(entries: Sequence[bytes]) -> bytes:
    """uint16 big-endian length || entry, for each entry in log order."""
    if not 1 <= len(entries) <= TILE_WIDTH:
        raise TileError("an entry bundle holds 1..256 entries")
    out = bytearray()
    for position, entry in enumerate(entries):
        if len(entry) > MAX_ENTRY_BYTES:
            raise EntryTooLong(
                f"entry {position} of the bundle is {len(entry)} bytes; an entry bundle "
                f"holds at most {MAX_ENTRY_BYTES} bytes an entry (a uint16 length)"
            )
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def decode_bundle(data: bytes, width: int | None = None) -> list[bytes]:
    """The entries of a bundle; truncation, trailing bytes or a count other than ``width``
    (when given) is refused."""
    entries: list[bytes] = []
    at = 0
    while at < len(data):
        if at + 2 > len(data):
            raise TileError("the entry bundle ends inside a length")
        length = int.from_bytes(data[at : at + 2], "big")
        if at + 2 + length > len(data):
            raise TileError(f"entry {len(entries)} of the bundle is truncated")
        entries.append(data[at + 2 : at + 2 + length])
        at += 2 + length
    if len(entries) > TILE_WIDTH or (width is not None and len(entries) != width):
        raise TileError(f"the bundle holds {len(entries)} entries, not {width or '1..256'}")
    return entries


def write_tiles(
    leaf_hashes: Sequence[bytes], entries: Sequence[bytes] | None = None
) -> dict[str, bytes]:
    """Every tile (and bundle, when the entries are given) of the tree of these leaves, by
    path: what a static mirror holds for that size (plus its ``checkpoint``)."""
    size = len(leaf_hashes)
    out: dict[str, bytes] = {}
    levels: dict[int, list[bytes]] = {}
    for tile in tiles_for_size(size):
        assert tile.level is not None
        if tile.level not in levels:
            levels[tile.level] = level_hashes(leaf_hashes, tile.level)
        out[tile.path] = tile_bytes(levels[tile.level], tile)
    if entries is not None:
        if len(entries) != size:
            raise TileError("one entry per leaf hash")
        for bundle in bundles_for_size(size):
            start = bundle.index * TILE_WIDTH
            out[bundle.path] = encode_bundle(entries[start : start + bundle.width])
    return out


Fetch = Callable[[str], bytes | None]


class _TileNodes:
    """A merkle.NodeReader over tiles: node (h, i) is a tile hash when 8 divides h, else the
    MTH of 2**(h mod 8) consecutive hashes of tile level h // 8, all inside one tile."""

    def __init__(self, size: int, fetch: Fetch) -> None:
        self.size, self.fetch = size, fetch
        self.tiles: dict[tuple[int, int], list[bytes]] = {}
        self.reads: list[str] = []

    def _tile(self, level: int, index: int) -> list[bytes]:
        if (level, index) not in self.tiles:
            count = self.size >> (8 * level)
            width = min(TILE_WIDTH, count - index * TILE_WIDTH)
            tile = Tile(level, index, width)
            data = self.fetch(tile.path)
            if data is None:
                raise TileError(f"{tile.path} is missing")
            self.reads.append(tile.path)
            self.tiles[(level, index)] = split_tile(data, width)
        return self.tiles[(level, index)]

    def get_nodes(self, keys: Sequence[merkle.Key]) -> Mapping[merkle.Key, bytes]:
        out: dict[merkle.Key, bytes] = {}
        for height, index in keys:
            level, below = divmod(height, 8)
            first = index << below
            tile = self._tile(level, first // TILE_WIDTH)
            offset = first % TILE_WIDTH
            out[(height, index)] = merkle.root_from_leaves(tile[offset : offset + (1 << below)])
        return out


def root_from_tiles(size: int, fetch: Fetch) -> bytes:
    """MTH(D[0:size]) from the few tiles on the tree's right edge (``fetch(path)`` returns a
    tile's bytes or None). Trusts the tiles it reads; ``verify_mirror`` checks them all."""
    return merkle.root(_TileNodes(size, fetch), size)


def verify_mirror(size: int, root_hash: bytes, fetch: Fetch, *, entries: bool = True) -> None:
    """Check a static mirror of the tree of ``size`` against a (verified) checkpoint's root:
    every tile has its exact width; each level-(L+1) hash is the MTH of the full level-L tile
    below it; each bundle's entries hash (SHA-256(0x00 || entry)) to its level-0 tile; and the
    root recomputed from the tiles is ``root_hash``. Raises TileError naming what differs."""
    nodes = _TileNodes(size, fetch)
    for tile in tiles_for_size(size):
        assert tile.level is not None
        hashes = nodes._tile(tile.level, tile.index)
        if tile.level > 0:
            for i, digest in enumerate(hashes):
                below = nodes._tile(tile.level - 1, tile.index * TILE_WIDTH + i)
                if merkle.root_from_leaves(below) != digest:
                    raise TileError(f"hash {i} of {tile.path} is not the root of the tile below")
    if entries:
        for bundle in bundles_for_size(size):
            data = fetch(bundle.path)
            if data is None:
                raise TileError(f"{bundle.path} is missing")
            found = [merkle.leaf_hash(e) for e in decode_bundle(data, bundle.width)]
            if found != nodes._tile(0, bundle.index):
                raise TileError(f"{bundle.path} does not hash to {tile_path(0, bundle.index)}")
    if size and merkle.root(nodes, size) != root_hash:
        raise TileError(f"the tiles' root for size {size} is not the checkpoint's root")
    if not size and root_hash != merkle.EMPTY_ROOT:
        raise TileError("a tree of size 0 has the empty root")
