"""The log as C2SP tlog-tiles over HTTP (issue 25, item 1): the tiles and bundles served
rebuild the checkpoint's root, full tiles are immutable, the checkpoint never cached, tokens
are needed and only the token's own tenant is served; the static mirror written at each seal
verifies on its own, its tiles read in batches as they are read one by one."""

from __future__ import annotations

from pathlib import Path

from shared.config import settings
from shared.integrity import note, tiles
from shared.tlog import mirror


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _root(text: str, vkeys: list[str]) -> tuple[int, bytes]:
    body, _ = note.open_note(text, [note.Verifier.from_vkey(v) for v in vkeys])
    checkpoint = note.parse_checkpoint(body)
    return checkpoint.size, checkpoint.root


def test_tiles_rebuild_the_checkpoint_root(log_client, tenant, fill, make_token):
    reader = _auth(make_token(tenant, "reader"))
    # 300 entries and the seal's map commit (entry_type 'map_commit', appended by every seal
    # with new entries): 301 leaves, one full level-0 tile and a partial one of 45.
    fill(tenant, 300)
    assert (
        log_client.post("/log/seal", headers=_auth(make_token(tenant, "auditor"))).status_code
        == 201
    )
    vkeys = log_client.get("/log/keys", headers=reader).json["keys"]
    served = log_client.get(f"/log/tiles/{tenant}/checkpoint", headers=reader)
    assert served.status_code == 200 and served.headers["Cache-Control"] == "no-store"
    size, root = _root(served.get_data(as_text=True), vkeys)
    assert size == 301
    fetched: dict[str, bytes] = {}

    def fetch(path: str) -> bytes | None:
        reply = log_client.get(f"/log/tiles/{tenant}/{path}", headers=reader)
        if reply.status_code != 200:
            return None
        tile = tiles.parse_tile_path(path)
        expected = "immutable" if tile.full else "private, max-age=10"
        assert expected in reply.headers["Cache-Control"], (path, reply.headers["Cache-Control"])
        fetched[path] = reply.data
        return reply.data

    tiles.verify_mirror(size, root, fetch)
    assert {"tile/0/000", "tile/0/001.p/45", "tile/1/000.p/1", "tile/entries/000"} <= set(fetched)
    full = log_client.get(f"/log/tiles/{tenant}/tile/0/000", headers=reader)
    assert full.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert full.headers["Vary"] == "Authorization"  # a shared cache keys it by the token


def test_tiles_refuse_no_token_another_tenant_and_what_is_not_sealed(
    log_client, tenant, fill, make_token
):
    reader = _auth(make_token(tenant, "reader"))
    fill(tenant, 3)  # and the seal's map commit: 4 entries sealed
    log_client.post("/log/seal", headers=_auth(make_token(tenant, "auditor")))
    assert log_client.get(f"/log/tiles/{tenant}/tile/0/000.p/3").status_code == 401
    other = _auth(make_token(tenant + "x", "reader"))
    refused = log_client.get(f"/log/tiles/{tenant}/tile/0/000.p/3", headers=other)
    assert refused.status_code == 403 and refused.mimetype == "application/problem+json"
    assert log_client.get(f"/log/tiles/{tenant}/checkpoint", headers=other).status_code == 403
    fill(tenant, 2)  # appended, not sealed: not served
    assert log_client.get(f"/log/tiles/{tenant}/tile/0/000.p/4", headers=reader).status_code == 200
    assert log_client.get(f"/log/tiles/{tenant}/tile/0/000.p/5", headers=reader).status_code == 404
    for bad in ("tile/0/0", "tile/0/000.p/256", "tile/64/000", "tile/0/x000/000", "tiles/0/000"):
        got = log_client.get(f"/log/tiles/{tenant}/{bad}", headers=reader)
        assert got.status_code == 404, bad
    bundle = log_client.get(f"/log/tiles/{tenant}/tile/entries/000.p/3", headers=reader)
    assert bundle.status_code == 200 and len(tiles.decode_bundle(bundle.data, 3)) == 3
    bundle = log_client.get(f"/log/tiles/{tenant}/tile/entries/000.p/5", headers=reader)
    assert bundle.status_code == 404


def test_each_seal_writes_a_mirror_that_verifies_alone(log_client, tenant, fill, make_token):
    auditor = _auth(make_token(tenant, "auditor"))
    reader = _auth(make_token(tenant, "reader"))
    vkeys = log_client.get("/log/keys", headers=reader).json["keys"]
    root_dir = (settings().anchor_dir or settings().data_dir / "anchors") / tenant / "tiles"
    for count in (5, 260, 1):
        fill(tenant, count)
        assert log_client.post("/log/seal", headers=auditor).status_code == 201
        text = (root_dir / "checkpoint").read_text()
        size, root = _root(text, vkeys)

        def fetch(path: str) -> bytes | None:
            target = root_dir / path
            return target.read_bytes() if target.is_file() else None

        tiles.verify_mirror(size, root, fetch)
    # 266 entries and the three seals' map commits (one per seal with new entries): 269.
    assert size == 269
    # A partial tile of an earlier size (5 entries and the first seal's map commit) stays: a
    # path's bytes never change.
    assert (root_dir / "tile/0/000.p/6").is_file()


def test_a_failed_mirror_write_is_caught_up_by_the_next_seal(
    log_client, tenant, fill, make_token, tmp_path: Path
):
    auditor = _auth(make_token(tenant, "auditor"))
    root_dir = (settings().anchor_dir or settings().data_dir / "anchors") / tenant / "tiles"
    # Each seal with new entries appends its map commit: sizes 4+1, then 5+3+1, then 9+1+1.
    fill(tenant, 4)
    log_client.post("/log/seal", headers=auditor)
    level0 = root_dir / "tile" / "0"
    level0.rename(tmp_path / "level0")
    level0.write_bytes(b"")  # a file where the next seal's tiles go: their write fails
    fill(tenant, 3)
    assert log_client.post("/log/seal", headers=auditor).status_code == 201  # the seal stands
    assert mirror.mirrored_size(mirror.DirectoryMirror(root_dir)) == 5  # checkpoint is last
    level0.unlink()
    (tmp_path / "level0").rename(level0)
    fill(tenant, 1)
    log_client.post("/log/seal", headers=auditor)
    assert mirror.mirrored_size(mirror.DirectoryMirror(root_dir)) == 11
    assert (root_dir / "tile/0/000.p/9").is_file() is False  # skipped: from 5 straight to 11
    assert (root_dir / "tile/0/000.p/11").is_file()


def test_tiles_read_in_batches_are_the_tiles_read_one_by_one_and_a_gap_spoils_one_bundle(
    tenant, fill, superuser, monkeypatch
):
    from shared import tlog
    from shared.storage import tree
    from shared.storage.engine import database
    from shared.tlog import tile_reads
    from tests.support.tampering import as_insider

    fill(tenant, 700)  # with the map commit: 701 leaves, two full tiles, three bundles
    tlog.seal(tenant)
    wanted = tiles.new_tiles(0, 701)
    with database().transaction(tenant) as conn:
        alone = [tile_reads.tile_data(conn, tree.DbNodes(conn), t) for t in wanted]
        monkeypatch.setattr(tile_reads, "BATCH", 3)  # batches that split levels and bundles
        assert tile_reads.tiles_data(conn, tree.DbNodes(conn), wanted) == alone
    assert None not in alone
    as_insider(
        superuser, "DELETE FROM log_entries WHERE tenant_id = :t AND idx = 300", t=tenant
    )  # an entry of bundle 1: that bundle cannot be made, the others are as they were
    with database().transaction(tenant) as conn:
        gapped = tile_reads.tiles_data(conn, tree.DbNodes(conn), wanted)
    spoiled = wanted.index(tiles.Tile(None, 1))
    assert gapped[spoiled] is None
    assert gapped[:spoiled] + gapped[spoiled + 1 :] == alone[:spoiled] + alone[spoiled + 1 :]
