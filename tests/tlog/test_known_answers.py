"""Known answers from ../shared/vectors (checked against Go's sumdb/note and tlog)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from shared.integrity import dsse, merkle, note

ASSETS = Path(__file__).resolve().parents[1] / "assets"
TLOG = json.loads((ASSETS / "tlog.json").read_text())
DSSE = json.loads((ASSETS / "dsse.json").read_text())


def b64(text: str) -> bytes:
    return base64.b64decode(text)


@pytest.fixture(scope="module")
def tree() -> merkle.MemoryNodes:
    nodes = merkle.MemoryNodes()
    nodes.append([merkle.leaf_hash(f"entry {i}".encode()) for i in range(100)])
    return nodes


def test_leaf_hashes_and_roots_match(tree):
    for i, expected in enumerate(TLOG["leaf_hashes"]):
        assert merkle.leaf_hash(f"entry {i}".encode()) == b64(expected)
    for size, expected in TLOG["roots"].items():
        assert merkle.root(tree, int(size)) == b64(expected)
    assert merkle.root(tree, 0) == b64(TLOG["empty_root"])


def test_inclusion_and_consistency_proofs_match(tree):
    for case in TLOG["inclusion"]:
        assert merkle.inclusion_proof(tree, case["index"], case["size"]) == [
            b64(h) for h in case["path"]
        ]
    for case in TLOG["consistency"]:
        assert merkle.consistency_proof(tree, case["old"], case["new"]) == [
            b64(h) for h in case["path"]
        ]


def test_checkpoint_signed_with_fixed_key_is_byte_exact(tree):
    signer = note.Signer.from_seed(TLOG["key_name"], bytes.fromhex(TLOG["ed25519_seed_hex"]))
    assert signer.vkey == TLOG["vkey"]
    size = TLOG["checkpoint_size"]
    body = note.checkpoint_body(TLOG["key_name"], size, merkle.root(tree, size))
    assert note.sign_note(body, [signer]) == TLOG["checkpoint_note"]
    text, names = note.open_note(TLOG["checkpoint_note"], [note.Verifier.from_vkey(TLOG["vkey"])])
    assert names == [TLOG["key_name"]]
    assert note.parse_checkpoint(text).size == size


def test_tampered_checkpoint_note_does_not_verify():
    verifier = note.Verifier.from_vkey(TLOG["vkey"])
    tampered = TLOG["checkpoint_note"].replace("\n100\n", "\n101\n")
    with pytest.raises(note.UnverifiedNote):
        note.open_note(tampered, [verifier])
    stranger = note.Signer.from_seed(TLOG["key_name"], b"\x01" * 32).verifier
    with pytest.raises(note.UnverifiedNote):
        note.open_note(TLOG["checkpoint_note"], [stranger])
    with pytest.raises(note.MalformedNote):
        note.open_note("no signature block\n", [verifier])
    with pytest.raises(note.MalformedNote):
        note.parse_checkpoint("origin\n0100\n" + TLOG["roots"]["1"] + "\n")


def test_dsse_pae_and_signature_match_the_vector():
    payload = b64(DSSE["payload"])
    assert dsse.pae(DSSE["payloadType"], payload).hex() == DSSE["pae_hex"]
    signer = note.Signer.from_seed("k", bytes.fromhex(DSSE["ed25519_seed_hex"]))
    envelope = dsse.sign_envelope(DSSE["payloadType"], payload, signer)
    assert envelope["signatures"][0]["sig"] == DSSE["envelope"]["signatures"][0]["sig"]
    assert dsse.verify_envelope(envelope, {signer.key_id_hex: signer.verifier}) == payload


def test_dsse_rejects_tampered_payload_type_and_unknown_key():
    signer = note.Signer.from_seed("k", bytes.fromhex(DSSE["ed25519_seed_hex"]))
    envelope = dsse.sign_envelope(DSSE["payloadType"], b"{}", signer)
    known = {signer.key_id_hex: signer.verifier}
    for changed in (
        {**envelope, "payload": base64.b64encode(b"{ }").decode()},
        {**envelope, "payloadType": "text/plain"},
    ):
        with pytest.raises(dsse.EnvelopeError):
            dsse.verify_envelope(changed, known)
    with pytest.raises(dsse.EnvelopeError):
        dsse.verify_envelope(envelope, {})
