"""An independent reader: tlog-scales (PyPI, florolf/tlog-scales 0.0.3, not ours) reads the
tiles, bundles and cosigned checkpoint that tiles.py and cosignature.py write to a directory,
recomputes the root, fetches entries with inclusion proofs and verifies our cosignature.

tlog-scales is not a dependency of the project: this test is skipped unless it is installed.
Run it in a throwaway venv (see docs/formats.md, "Witness cosignatures and tiles").
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.integrity import merkle, tiles
from shared.integrity.cosignature import WitnessSigner, add_cosignatures
from shared.integrity.note import Signer, checkpoint_body, sign_note

scales_backend = pytest.importorskip("tlog_scales.backend")
scales_reader = pytest.importorskip("tlog_scales.reader")
scales_signing = pytest.importorskip("tlog_scales.signing")

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
