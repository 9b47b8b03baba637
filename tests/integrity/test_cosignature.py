"""C2SP tlog-cosignature v1: the bytes pinned in cosignature.json, rebuilt by hand from the
C2SP text, and the attacks a verifier must refuse."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.integrity import cosignature as cs
from shared.integrity.note import Signer, Verifier, checkpoint_body, open_note, sign_note

KAT = json.loads((Path(__file__).parent / "cosignature.json").read_text())
TEXT = KAT["checkpoint_note"][: KAT["checkpoint_note"].rfind("\n\n") + 1]
SIGNER = cs.WitnessSigner.from_seed(KAT["witness_name"], bytes.fromhex(KAT["ed25519_seed_hex"]))
WITNESS = cs.WitnessKey.from_vkey(KAT["vkey"])
LOG = Verifier.from_vkey(KAT["log_vkey"])


def test_known_answer_bytes_rebuilt_from_the_c2sp_text() -> None:
    name = KAT["witness_name"].encode()
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(KAT["ed25519_seed_hex"]))
    public = base64.b64decode(KAT["public_key_b64"])
    assert key.public_key().public_bytes_raw() == public
    key_id = hashlib.sha256(name + b"\n" + b"\x04" + public).digest()[:4]
    assert key_id.hex() == KAT["key_id_hex"] == SIGNER.key.key_id.hex()
    vkey = f"{KAT['witness_name']}+{key_id.hex()}+" + base64.b64encode(b"\x04" + public).decode()
    assert vkey == KAT["vkey"] == SIGNER.vkey
    t = KAT["timestamp"]
    message = b"cosignature/v1\ntime " + str(t).encode() + b"\n" + TEXT.encode()
    assert message == KAT["signed_message"].encode() == cs.signed_message(TEXT, t)
    signature = key.sign(message)
    assert signature.hex() == KAT["signature_hex"]
    blob = key_id + t.to_bytes(8, "big") + signature
    line = "\u2014 " + KAT["witness_name"] + " " + base64.b64encode(blob).decode() + "\n"
    assert len(blob) == 76
    assert line == KAT["cosignature_line"] == SIGNER.cosign(TEXT, t).line
    assert cs.add_cosignatures(KAT["checkpoint_note"], [line]) == KAT["cosigned_note"]


def test_the_c2sp_example_line_parses_to_its_printed_time() -> None:
    example = KAT["c2sp_example"]
    parsed = cs.parse_cosignature(example["line"])
    assert (parsed.name, parsed.key_id.hex(), parsed.timestamp) == (
        example["name"],
        example["key_id_hex"],
        example["timestamp"],
    )
    assert parsed.line == example["line"]


def test_cosigned_note_verifies_for_the_witness_and_still_opens_with_the_log_key() -> None:
    note = KAT["cosigned_note"]
    assert cs.check_cosignatures(note, [WITNESS]).valid == {WITNESS.name: KAT["timestamp"]}
    text, names = open_note(note, [LOG])  # the cosignature line is an unknown key: ignored
    assert (text, names) == (TEXT, [LOG.name])


def test_unknown_extra_signature_lines_are_ignored_by_the_log_key() -> None:
    other = cs.WitnessSigner.from_seed("other.example/w9", b"\x07" * 32)
    odd = "\u2014 someone.example/x " + base64.b64encode(b"\x01\x02\x03\x04" + b"z" * 100).decode()
    note = cs.add_cosignatures(
        KAT["cosigned_note"], [other.cosign(TEXT, 5).line, odd, KAT["cosignature_line"]]
    )
    assert note.count(KAT["cosignature_line"]) == 1
    assert open_note(note, [LOG]) == (TEXT, [LOG.name])
    assert cs.check_cosignatures(note, [WITNESS]).valid == {WITNESS.name: KAT["timestamp"]}


def test_a_cosignature_over_another_checkpoint_is_refused() -> None:
    log = Signer.from_seed(LOG.name, bytes.fromhex("914b" + "00" * 30))
    other_text = checkpoint_body(LOG.name, 101, b"\x11" * 32)
    other = sign_note(other_text, [log])
    moved = cs.add_cosignatures(other, [KAT["cosignature_line"]])
    report = cs.check_cosignatures(moved, [WITNESS])
    assert report.valid == {}
    assert "does not verify" in report.failures[WITNESS.name]


def test_a_wrong_key_id_makes_the_line_someone_elses() -> None:
    blob = bytearray(base64.b64decode(KAT["cosignature_line"].split(" ")[2]))
    blob[0] ^= 1
    line = f"\u2014 {WITNESS.name} {base64.b64encode(bytes(blob)).decode()}\n"
    note = cs.add_cosignatures(KAT["checkpoint_note"], [line])
    report = cs.check_cosignatures(note, [WITNESS])
    assert report.valid == {}
    assert report.failures == {WITNESS.name: "no cosignature by this witness on the checkpoint"}


def test_a_log_key_id_computed_with_0x01_is_not_the_witness_key_id() -> None:
    ed25519_id = hashlib.sha256(WITNESS.name.encode() + b"\n\x01" + WITNESS.public_key).digest()
    assert ed25519_id[:4] != WITNESS.key_id


def test_an_edited_timestamp_is_refused() -> None:
    blob = bytearray(base64.b64decode(KAT["cosignature_line"].split(" ")[2]))
    blob[11] ^= 1  # the timestamp's last byte
    line = f"\u2014 {WITNESS.name} {base64.b64encode(bytes(blob)).decode()}\n"
    note = cs.add_cosignatures(KAT["checkpoint_note"], [line])
    assert cs.check_cosignatures(note, [WITNESS]).valid == {}
    with pytest.raises(cs.BadCosignature, match=r"witness\.plant\.example/w1: its cosignature"):
        cs.require_quorum(note, [WITNESS], 1)


def test_a_cosignature_dated_in_the_future_can_be_refused() -> None:
    note = cs.add_cosignatures(KAT["checkpoint_note"], [SIGNER.cosign(TEXT, 10_000).line])
    assert cs.check_cosignatures(note, [WITNESS], now=10_000).valid == {WITNESS.name: 10_000}
    assert "future" in cs.check_cosignatures(note, [WITNESS], now=1_000).failures[WITNESS.name]


def test_quorum_counts_distinct_witnesses_and_names_the_missing_one() -> None:
    second = cs.WitnessSigner.from_seed("witness.plant.example/w2", b"\x02" * 32)
    note = cs.add_cosignatures(KAT["checkpoint_note"], [KAT["cosignature_line"]])
    assert cs.require_quorum(note, [WITNESS, second.key], 1) == {WITNESS.name: KAT["timestamp"]}
    with pytest.raises(cs.BadCosignature, match="w2: no cosignature"):
        cs.require_quorum(note, [WITNESS, second.key], 2)
    both = cs.add_cosignatures(note, [second.cosign(TEXT, 7).line])
    assert len(cs.require_quorum(both, [WITNESS, second.key], 2)) == 2


@pytest.mark.parametrize(
    "vkey",
    [
        KAT["log_vkey"],  # type 0x01: a log key, not a cosigner key
        KAT["vkey"].replace("+89d5b140+", "+89d5b141+"),
        KAT["vkey"] + "+",
        KAT["vkey"].replace("BGHV", "BGH!"),
        "a b" + KAT["vkey"][KAT["vkey"].index("+") :],
    ],
)
def test_malformed_witness_vkeys_are_refused(vkey: str) -> None:
    with pytest.raises(cs.MalformedCosignature):
        cs.WitnessKey.from_vkey(vkey)


@pytest.mark.parametrize("timestamp", [0, -1, 2**63])
def test_timestamps_outside_1_to_2_63_minus_1_are_refused(timestamp: int) -> None:
    with pytest.raises(cs.MalformedCosignature):
        SIGNER.cosign(TEXT, timestamp)


def test_a_line_of_the_witness_with_the_wrong_length_fails_that_witness() -> None:
    short = f"\u2014 {WITNESS.name} " + base64.b64encode(WITNESS.key_id + b"\x00" * 70).decode()
    note = cs.add_cosignatures(KAT["cosigned_note"], [short])
    report = cs.check_cosignatures(note, [WITNESS])
    assert report.valid == {} and "76 bytes" in report.failures[WITNESS.name]
