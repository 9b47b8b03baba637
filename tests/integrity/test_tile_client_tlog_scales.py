"""An independent reader: tlog-scales (PyPI, florolf/tlog-scales 0.0.3, not ours; pinned in
requirements-dev.txt, its requirements cryptography>=48 and requests>=2.34.2 met by ours)
reads the tiles, bundles and cosigned checkpoint that tiles.py and cosignature.py write to a
directory, recomputes the root, fetches entries with inclusion proofs and verifies our
cosignature; and it reads a tenant's log SERVED by a real `plant serve` (its own HTTP
backend, with a reader's token) and from the static mirror a seal wrote, and gets the root of
the checkpoint our log key signed.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from tlog_scales import backend as scales_backend
from tlog_scales import reader as scales_reader
from tlog_scales import signing as scales_signing

from shared.integrity import merkle, tiles
from shared.integrity import note as notes
from shared.integrity.cosignature import WitnessSigner, add_cosignatures
from shared.integrity.note import Signer, checkpoint_body, sign_note
from shared.tlog import keys
from tests.support.databases import create_database
from tests.support.plant_server import PlantServer, call

ORIGIN = "plant.example/log/test-tenant"


@pytest.mark.parametrize("size", [1, 255, 256, 300, 65536 + 700])
def test_tlog_scales_reads_our_tiles_and_gets_our_root(tmp_path: Path, size: int) -> None:
    entries = [b"entry %d" % i for i in range(size)]
    leaves = [merkle.leaf_hash(e) for e in entries]
    nodes = merkle.MemoryNodes()
    nodes.append(leaves)
    root = merkle.root(nodes, size)
    for path, data in tiles.write_tiles(leaves, entries).items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(data)
    log = Signer.from_seed(ORIGIN, b"\x01" * 32)
    witness = WitnessSigner.from_seed("witness.plant.example/w1", b"\x02" * 32)
    text = checkpoint_body(ORIGIN, size, root)
    note = add_cosignatures(sign_note(text, [log]), [witness.cosign(text, 1_700_000_000).line])
    (tmp_path / "checkpoint").write_text(note)

    reader = scales_reader.TilesReader(scales_backend.LocalBackend(tmp_path))
    checkpoint = reader.get_checkpoint()
    assert (checkpoint.origin, checkpoint.size, checkpoint.root_hash) == (ORIGIN, size, root)
    assert reader.calculate_root_hash() == root
    for index in {0, size // 2, size - 1}:
        assert reader.get_entry(index) == entries[index]
        proof = reader.get_inclusion_proof(index, size)
        assert merkle.verify_inclusion(leaves[index], index, size, proof.node_hashes, root)

    keys = scales_signing.VkeySet(
        scales_signing.Vkey.from_string(log.vkey),
        scales_signing.Vkey.from_string(witness.vkey),
    )
    valid = keys.verify(checkpoint.signatures, checkpoint)
    assert {vkey.name for vkey, _ in valid} == {ORIGIN, witness.name}


def test_tlog_scales_reads_the_log_a_real_server_serves_and_its_mirror(
    tmp_path: Path, tenant: str, make_token, database_url: str
) -> None:
    server = PlantServer(
        create_database(os.environ["PLANT_TEST_SERVER_URL"], "plant_scales"),
        Path(os.environ["PLANT_DATA_DIR"]),
        tmp_path,
        env={"PLANT_ANCHOR_DIR": str(tmp_path / "anchors")},
    )
    server.start()
    try:
        author, reader = make_token(tenant, "author"), make_token(tenant, "reader")
        # 260 skills and the seal's map commit (appended by every seal with new entries): 261
        # leaves, one full level-0 tile and a partial one of 5.
        for i in range(260):
            body = {"name": f"skill {i}", "description": "d", "category": "technical"}
            assert call(server.base, "POST", "/registry/skills", author, body).status == 201
        assert call(server.base, "POST", "/log/seal", make_token(tenant, "auditor")).ok
        served = call(server.base, "GET", "/log/checkpoint", reader).body
        text = served.decode() if isinstance(served, bytes) else str(served)
        body_text, _ = notes.open_note(text, list(keys.keyring().verifiers))
        ours = notes.parse_checkpoint(body_text)
        entry = call(server.base, "GET", "/log/entries/259", reader).body

        http = scales_backend.HttpBackend(f"{server.base}/log/tiles/{tenant}")
        http.session.headers["Authorization"] = f"Bearer {reader}"
        mirror = scales_backend.LocalBackend(tmp_path / "anchors" / tenant / "tiles")
        for backend in (http, mirror):
            log = scales_reader.TilesReader(backend)
            checkpoint = log.get_checkpoint()
            assert (checkpoint.size, checkpoint.root_hash) == (261, ours.root)
            assert log.calculate_root_hash() == ours.root
            assert log.get_entry(259) == base64.b64decode(entry["body"])
            log_key = scales_signing.Vkey.from_string(keys.keyring().active.vkey)
            valid = scales_signing.VkeySet(log_key).verify(checkpoint.signatures, checkpoint)
            assert [vkey.name for vkey, _ in valid] == [keys.keyring().active.name]
        # Without the token, the served tiles are not readable at all.
        bare = scales_backend.HttpBackend(f"{server.base}/log/tiles/{tenant}")
        assert bare.get("tile", "0", "000") is None
        assert http.get("tile", "0", "000") is not None
    finally:
        server.stop()
