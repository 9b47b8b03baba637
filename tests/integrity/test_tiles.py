"""C2SP tlog-tiles: paths, which tiles a size has, tile and bundle bytes (tiles.json), and a
mirror whose root is recomputed from its files and matches merkle's."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from shared.integrity import merkle, tiles

KAT = json.loads((Path(__file__).parent / "tiles.json").read_text())
TLOG = json.loads((Path(__file__).resolve().parents[1] / "assets" / "tlog.json").read_text())


def _entries(n: int) -> list[bytes]:
    return [b"entry %d" % i for i in range(n)]


@pytest.mark.parametrize("case", KAT["paths"], ids=lambda c: c["path"])
def test_tile_paths_known_answers(case: dict) -> None:
    level = None if case["level"] == "entries" else case["level"]
    tile = tiles.Tile(level, case["index"], case["width"])
    assert tile.path == case["path"]
    assert tiles.parse_tile_path(case["path"]) == tile


def test_the_c2sp_example_index_and_sizes() -> None:
    assert tiles.encode_index(1234067) == "x001/x234/067"
    by_level: dict[int | None, list[int]] = {}
    for tile in tiles.tiles_for_size(70000):
        by_level.setdefault(tile.level, []).append(tile.width)
    # 273 full level-0 tiles and one of 112; one full level-1 tile and one of 17; one of 1.
    assert by_level == {0: [256] * 273 + [112], 1: [256, 17], 2: [1]}
    assert [t.path for t in tiles.tiles_for_size(256)] == ["tile/0/000", "tile/1/000.p/1"]


@pytest.mark.parametrize("size", sorted(KAT["tiles_for_size"], key=int))
def test_tiles_for_size_known_answers(size: str) -> None:
    found = tiles.tiles_for_size(int(size))
    want = KAT["tiles_for_size"][size]
    if isinstance(want, list):
        assert [t.path for t in found] == want
    else:
        assert len(found) == want["count"]
        assert [t.path for t in found if not t.full] == want["not_full"]


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/0",
        "tile/00/000",
        "tile/64/000",
        "tile/0/x000/001",  # not canonical: 1 is 001
        "tile/0/001/002",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/010",
        "tile/entries/x1/000",
        "tile/-1/000",
        "/tile/0/000",
        "tile/0/000.p/",
    ],
)
def test_non_canonical_or_invalid_paths_are_refused(path: str) -> None:
    with pytest.raises(tiles.TileError):
        tiles.parse_tile_path(path)


def test_bundle_known_answer_and_round_trip() -> None:
    entries = [bytes.fromhex(h) for h in KAT["bundle"]["entries_hex"]]
    data = tiles.encode_bundle(entries)
    assert data.hex() == KAT["bundle"]["bundle_hex"]
    assert tiles.decode_bundle(data, 3) == entries
    assert tiles.decode_bundle(tiles.encode_bundle([b"x" * 65535])) == [b"x" * 65535]


def test_an_entry_over_65535_bytes_is_refused_naming_the_limit() -> None:
    with pytest.raises(tiles.EntryTooLong, match="65535 bytes"):
        tiles.encode_bundle([b"ok", b"x" * 65536])


@pytest.mark.parametrize("data", [b"\x00", b"\x00\x05abc", b"\x00\x01a\x00"])
def test_truncated_bundles_are_refused(data: bytes) -> None:
    with pytest.raises(tiles.TileError):
        tiles.decode_bundle(data)


def test_a_bundle_of_the_wrong_width_is_refused() -> None:
    with pytest.raises(tiles.TileError, match="not 3"):
        tiles.decode_bundle(tiles.encode_bundle([b"a", b"b"]), 3)


def test_300_entry_tree_tiles_known_answers_and_root() -> None:
    entries = _entries(300)
    leaves = [merkle.leaf_hash(e) for e in entries]
    files = tiles.write_tiles(leaves, entries)
    tree = KAT["tree"]
    assert {p: hashlib.sha256(d).hexdigest() for p, d in files.items()} == tree["files_sha256"]
    root = base64.b64decode(tree["root_b64"])
    assert root == merkle.root_from_leaves(leaves)
    assert tiles.root_from_tiles(300, files.get) == root
    # Built by hand: the level-1 hash is the MTH of the first 256 leaves.
    level1 = tiles.split_tile(files["tile/1/000.p/1"], 1)[0]
    assert level1 == merkle.root_from_leaves(leaves[:256])
    assert files["tile/0/000"] == b"".join(leaves[:256])
    assert files["tile/entries/001.p/44"][:2] == len(entries[256]).to_bytes(2, "big")


@pytest.mark.parametrize("size", [1, 2, 7, 31, 32, 33, 63, 64, 65, 99, 100])
def test_roots_from_tiles_match_tlog_json(size: int) -> None:
    leaves = [merkle.leaf_hash(e) for e in _entries(size)]
    assert leaves[0] == base64.b64decode(TLOG["leaf_hashes"][0])
    files = tiles.write_tiles(leaves)
    assert tiles.root_from_tiles(size, files.get) == base64.b64decode(TLOG["roots"][str(size)])


def test_a_tree_over_65536_leaves_root_from_three_levels() -> None:
    size = 65536 + 256 * 3 + 5
    entries = _entries(size)
    leaves = [merkle.leaf_hash(e) for e in entries]
    nodes = merkle.MemoryNodes()
    nodes.append(leaves)
    files = tiles.write_tiles(leaves, entries)
    assert "tile/2/000.p/1" in files and "tile/1/001.p/3" in files
    reads: list[str] = []

    def fetch(path: str) -> bytes | None:
        reads.append(path)
        return files.get(path)

    root = merkle.root(nodes, size)
    assert tiles.root_from_tiles(size, fetch) == root
    assert len(reads) <= 4  # the right edge only
    tiles.verify_mirror(size, root, files.get)


def test_level_hashes_are_merkle_nodes_at_eight_times_the_level() -> None:
    leaves = [merkle.leaf_hash(e) for e in _entries(600)]
    nodes = merkle.MemoryNodes()
    nodes.append(leaves)
    assert tiles.level_hashes(leaves, 1) == [nodes.nodes[(8, 0)], nodes.nodes[(8, 1)]]


def test_new_tiles_are_what_the_old_size_lacked() -> None:
    got = [t.path for t in tiles.new_tiles(250, 260)]
    assert got == [
        "tile/0/000",
        "tile/0/001.p/4",
        "tile/1/000.p/1",
        "tile/entries/000",
        "tile/entries/001.p/4",
    ]
    assert tiles.new_tiles(300, 300) == []


@pytest.mark.parametrize("old", [0, 1, 255, 256, 257, 65535, 65536, 65537, 70000, 1_000_000])
@pytest.mark.parametrize("grown", [0, 1, 255, 256, 10001, 65536, 200000])
def test_new_tiles_are_the_new_sizes_tiles_the_old_size_had_not(old: int, grown: int) -> None:
    # new_tiles lists only the new ones (a seal's mirror at 1,000,000 listed ~8,000 to find
    # ~85); what it gives is the set difference of the two sizes' tiles, in the same order
    have = {*tiles.tiles_for_size(old), *tiles.bundles_for_size(old)}
    everything = tiles.tiles_for_size(old + grown) + tiles.bundles_for_size(old + grown)
    assert tiles.new_tiles(old, old + grown) == [t for t in everything if t not in have]


def test_mirror_checks_catch_each_kind_of_tampering() -> None:
    size = 600
    entries = _entries(size)
    leaves = [merkle.leaf_hash(e) for e in entries]
    files = tiles.write_tiles(leaves, entries)
    root = merkle.root_from_leaves(leaves)
    tiles.verify_mirror(size, root, files.get)

    edited = dict(files, **{"tile/entries/001": tiles.encode_bundle(_entries(257)[1:])})
    with pytest.raises(tiles.TileError, match="does not hash to tile/0/001"):
        tiles.verify_mirror(size, root, edited.get)
    swapped = dict(files, **{"tile/0/000": files["tile/0/001"]})
    with pytest.raises(tiles.TileError, match="not the root of the tile below"):
        tiles.verify_mirror(size, root, swapped.get)
    missing = {p: d for p, d in files.items() if p != "tile/0/002.p/88"}
    with pytest.raises(tiles.TileError, match=r"tile/0/002\.p/88 is missing"):
        tiles.verify_mirror(size, root, missing.get)
    short = dict(files, **{"tile/0/002.p/88": files["tile/0/002.p/88"][:-32]})
    with pytest.raises(tiles.TileError, match="width 88"):
        tiles.verify_mirror(size, root, short.get)
    with pytest.raises(tiles.TileError, match="not the checkpoint's root"):
        tiles.verify_mirror(size, b"\x00" * 32, files.get)
