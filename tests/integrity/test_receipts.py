"""Write receipts: pinned bytes and signatures, round trips, and each attack an insider or a
replaying server could try, named by its precise reason (docs/formats.md, 'Write receipts')."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from pathlib import Path

import pytest

from shared.integrity import dsse, merkle, note, receipts
from shared.integrity.receipts import BatchEntryReceipt, Receipt

HERE = Path(__file__).resolve().parent
VECTORS = json.loads((HERE / "receipts.json").read_text())
TLOG = json.loads((HERE.parent / "assets" / "tlog.json").read_text())
ORIGIN = VECTORS["origin"]
VKEY = VECTORS["vkey"]
TIME = VECTORS["time"]
SIGNER = note.Signer.from_seed(TLOG["key_name"], bytes.fromhex(TLOG["ed25519_seed_hex"]))
OTHER = note.Signer.from_seed(TLOG["key_name"], hashlib.sha256(b"another key").digest())


def entry(i: int) -> bytes:
    return f"entry {i}".encode()


def leaf(i: int) -> bytes:
    return merkle.leaf_hash(entry(i))


def reason_of(exc: pytest.ExceptionInfo[receipts.ReceiptError]) -> str:
    return exc.value.reason


# -- known answers --------------------------------------------------------------------------


def test_the_seed_and_key_are_tlog_vectors():
    assert (
        bytes.fromhex(TLOG["ed25519_seed_hex"])
        == hashlib.sha256(b"plant registry test key").digest()
    )
    assert SIGNER.vkey == VKEY == TLOG["vkey"]


def test_entry_signed_bytes_and_signature_match_the_known_answer():
    case = VECTORS["entry"]
    assert (
        base64.b64decode(case["leaf_hash"]) == leaf(3) == base64.b64decode(TLOG["leaf_hashes"][3])
    )
    origin = ORIGIN.encode()
    by_hand = (
        b"plant-receipt/v1\n"
        + b"\x00"
        + bytes.fromhex("e48cde96")
        + struct.pack(">Q", TIME)
        + struct.pack(">H", len(origin))
        + origin
        + struct.pack(">Q", 3)
        + leaf(3)
    )
    receipt = receipts.sign_entry(SIGNER, ORIGIN, 3, leaf(3), TIME)
    assert receipt.signed_bytes() == by_hand == bytes.fromhex(case["signed_bytes_hex"])
    assert receipt.signature.hex() == case["signature_hex"]
    assert receipt.encode() == b"\x01" + by_hand[17:] + receipt.signature
    assert receipt.encode().hex() == case["encoding_hex"]
    assert receipt.to_json() == case["json"]
    assert receipts.verify(bytes.fromhex(case["encoding_hex"]), [VKEY], ORIGIN, 3, entry=entry(3))


def test_batch_signed_bytes_signature_and_paths_match_the_known_answer():
    case = VECTORS["batch"]
    first, count = case["first"], case["count"]
    leaves = [leaf(i) for i in range(first, first + count)]
    root = merkle.root_from_leaves(leaves)
    assert base64.b64decode(case["root"]) == root
    origin = ORIGIN.encode()
    by_hand = (
        b"plant-receipt/v1\n\x01"
        + bytes.fromhex("e48cde96")
        + struct.pack(">QH", TIME, len(origin))
        + origin
        + struct.pack(">QQ", first, count)
        + root
    )
    batch, entries = receipts.sign_batch(SIGNER, ORIGIN, first, leaves, TIME)
    assert batch.signed_bytes() == by_hand == bytes.fromhex(case["signed_bytes_hex"])
    assert batch.signature.hex() == case["signature_hex"]
    assert batch.encode().hex() == case["encoding_hex"]
    for got, want in zip(entries, case["entries"], strict=True):
        assert got.index == want["index"]
        assert [base64.b64encode(p).decode() for p in got.path] == want["path"]
        assert got.encode().hex() == want["encoding_hex"]
        tail = struct.pack(">Q", got.index) + leaf(got.index) + bytes([len(got.path)])
        assert got.encode() == batch.encode() + tail + b"".join(got.path)
        stored = bytes.fromhex(want["encoding_hex"])
        receipts.verify(stored, [VKEY], ORIGIN, want["index"], entry=want["entry"].encode())


def test_signed_bytes_are_never_a_checkpoint_a_cosignature_or_a_dsse_pae():
    single = receipts.sign_entry(SIGNER, ORIGIN, 0, leaf(0), TIME).signed_bytes()
    batch, _ = receipts.sign_batch(SIGNER, ORIGIN, 0, [leaf(0), leaf(1)], TIME)
    for message in (single, batch.signed_bytes()):
        assert message.startswith(b"plant-receipt/v1\n")
        assert message[17] < 0x20 and message[17] != 0x0A  # a control byte: no note text
        assert not message.startswith((b"DSSEv1 ", b"cosignature/v1\n"))
        try:
            text = message.decode()
        except UnicodeDecodeError:
            continue  # not even text
        with pytest.raises(note.MalformedNote):  # a control character: not a note's text
            note.sign_note(text, [SIGNER])
    assert not dsse.pae("x", b"").startswith(b"plant-receipt/v1")


# -- round trips ----------------------------------------------------------------------------


def test_an_entry_receipt_round_trips_through_bytes_and_json():
    receipt = receipts.sign_entry(SIGNER, "plant.example/log/tenant-é", 2**40, leaf(9))
    assert receipts.decode(receipt.encode()) == receipt
    assert receipts.from_json(json.loads(json.dumps(receipt.to_json()))) == receipt
    assert receipts.verify(receipt.to_json(), [VKEY], receipt.origin, 2**40, leaf_hash=leaf(9))


@pytest.mark.parametrize("count", [1, 2, 3, 7, 8, 9, 17])
def test_every_entry_of_a_batch_verifies_alone_from_bytes_and_json(count):
    first = 1000
    leaves = [leaf(i) for i in range(first, first + count)]
    batch, entries = receipts.sign_batch(SIGNER, ORIGIN, first, leaves)
    assert receipts.decode_batch(batch.encode()) == batch
    receipts.verify_range(batch, [VKEY], ORIGIN, leaves)
    for e in entries:
        assert receipts.decode(e.encode()) == e
        assert receipts.from_json(json.loads(json.dumps(e.to_json()))) == e
        receipts.verify(e.encode(), [VKEY], ORIGIN, e.index, entry=entry(e.index))
        receipts.verify(e.to_json(), [VKEY], ORIGIN, e.index, leaf_hash=e.leaf_hash)


def test_a_rotated_keyring_still_verifies_receipts_of_the_old_key():
    receipt = receipts.sign_entry(SIGNER, ORIGIN, 5, leaf(5), TIME)
    receipts.verify(receipt, [OTHER.vkey, VKEY], ORIGIN, 5, leaf_hash=leaf(5))


# -- attacks, each with its reason ----------------------------------------------------------


@pytest.fixture(scope="module")
def single() -> Receipt:
    return receipts.sign_entry(SIGNER, ORIGIN, 3, leaf(3), TIME)


@pytest.fixture(scope="module")
def batch_entries() -> list[BatchEntryReceipt]:
    _, entries = receipts.sign_batch(SIGNER, ORIGIN, 10, [leaf(i) for i in range(10, 20)], TIME)
    return entries


def check(receipt: object, index: int, reason: str, **kw: object) -> None:
    kw.setdefault("origin", ORIGIN)
    kw.setdefault("keys", [VKEY])
    if "leaf_hash" not in kw and "entry" not in kw:
        kw["entry"] = entry(index)
    with pytest.raises(receipts.ReceiptError) as exc:
        receipts.verify(receipt, index=index, **kw)  # type: ignore[arg-type]
    assert reason_of(exc) == reason, exc.value


def test_a_receipt_replayed_for_another_index_is_an_index_mismatch(single, batch_entries):
    check(single.encode(), 4, "index_mismatch", entry=entry(3))
    check(batch_entries[0].encode(), 11, "index_mismatch", entry=entry(10))


def test_a_receipt_replayed_into_another_tenant_is_a_wrong_origin(single, batch_entries):
    check(single.encode(), 3, "wrong_origin", origin="plant.example/log/other-tenant")
    check(batch_entries[3].to_json(), 13, "wrong_origin", origin="plant.example/log/other-tenant")


def test_a_receipt_for_another_entry_at_the_index_is_a_leaf_mismatch(single, batch_entries):
    check(single.encode(), 3, "leaf_mismatch", entry=b"entry 3 rewritten")
    check(batch_entries[2].encode(), 12, "leaf_mismatch", entry=b"entry 12 rewritten")


def test_a_batch_path_taken_from_another_entry_is_a_bad_path(batch_entries):
    victim, donor = batch_entries[2], batch_entries[5]
    forged = BatchEntryReceipt(victim.batch, victim.index, victim.leaf_hash, donor.path)
    check(forged.encode(), victim.index, "bad_path")
    # the other entry's whole receipt with its index and leaf claims edited to the victim's
    moved = BatchEntryReceipt(donor.batch, victim.index, victim.leaf_hash, donor.path)
    check(moved.to_json(), victim.index, "bad_path")
    # a path one hash short or one too long
    check(
        BatchEntryReceipt(victim.batch, victim.index, victim.leaf_hash, victim.path[:-1]),
        victim.index,
        "bad_path",
    )
    longer = (*victim.path, victim.path[0])
    check(
        BatchEntryReceipt(victim.batch, victim.index, victim.leaf_hash, longer),
        victim.index,
        "bad_path",
    )


def test_a_batch_entry_claiming_an_index_outside_its_range_is_an_index_mismatch(batch_entries):
    e = batch_entries[0]
    outside = BatchEntryReceipt(e.batch, 20, leaf(20), e.path)
    check(outside.encode(), 20, "index_mismatch")


def test_a_receipt_signed_by_another_key_is_a_wrong_key_or_a_bad_signature(single):
    own = receipts.sign_entry(OTHER, ORIGIN, 3, leaf(3), TIME)
    check(own.encode(), 3, "wrong_key")
    # the forger writes the pinned key's id and signs with their own key
    claimed = Receipt(ORIGIN, 3, leaf(3), TIME, single.key_id, bytes(64))
    forged = Receipt(ORIGIN, 3, leaf(3), TIME, single.key_id, OTHER.sign(claimed.signed_bytes()))
    check(forged.encode(), 3, "bad_signature")
    _, entries = receipts.sign_batch(OTHER, ORIGIN, 0, [leaf(0), leaf(1)], TIME)
    check(entries[1].encode(), 1, "wrong_key")
    check(single.encode(), 3, "wrong_key", keys=[OTHER.vkey])


def test_a_receipt_whose_time_was_edited_is_a_bad_signature(single, batch_entries):
    edited = bytearray(single.encode())
    edited[6:14] = struct.pack(">Q", TIME - 86_400_000)  # version, type, key id, then time
    assert receipts.decode(bytes(edited)).time_ms == TIME - 86_400_000
    check(bytes(edited), 3, "bad_signature")
    as_json = dict(batch_entries[4].to_json(), time=TIME + 1)
    check(as_json, batch_entries[4].index, "bad_signature")


def test_any_other_edited_byte_of_a_receipt_is_refused(single):
    good = single.encode()
    for at in range(len(good)):
        edited = bytearray(good)
        edited[at] ^= 0x01
        with pytest.raises(receipts.ReceiptError):
            receipts.verify(bytes(edited), [VKEY], ORIGIN, 3, entry=entry(3))


@pytest.mark.parametrize("kind", ["entry", "batch_entry", "batch"])
def test_a_truncated_or_extended_encoding_is_malformed(kind, single, batch_entries):
    good = {
        "entry": single.encode(),
        "batch_entry": batch_entries[1].encode(),
        "batch": batch_entries[1].batch.encode(),
    }[kind]
    parse = receipts.decode_batch if kind == "batch" else receipts.decode
    for cut in range(len(good)):
        with pytest.raises(receipts.MalformedReceipt) as exc:
            parse(good[:cut])
        assert reason_of(exc) == "malformed_encoding"
    for extra in (b"\x00", b"\x00" * 32, good):
        with pytest.raises(receipts.MalformedReceipt) as exc:
            parse(good + extra)
        assert reason_of(exc) == "malformed_encoding"
    if kind != "batch":
        check(good[:-1], 3, "malformed_encoding")


def test_unknown_versions_and_types_are_refused(single):
    good = single.encode()
    for edited in (b"\x02" + good[1:], b"\x00" + good[1:], good[:1] + b"\x02" + good[2:]):
        with pytest.raises(receipts.UnsupportedVersion) as exc:
            receipts.decode(edited)
        assert reason_of(exc) == "unsupported_version"
    with pytest.raises(receipts.UnsupportedVersion):
        receipts.from_json(dict(single.to_json(), format="plant-receipt/v2"))
    with pytest.raises(receipts.UnsupportedVersion):
        receipts.from_json(dict(single.to_json(), type="batch"))


def test_a_batch_receipt_is_not_an_entry_receipt(batch_entries):
    with pytest.raises(receipts.MalformedReceipt):
        receipts.decode_batch(receipts.sign_entry(SIGNER, ORIGIN, 0, leaf(0), TIME).encode())


@pytest.mark.parametrize(
    "change",
    [
        {"index": True},
        {"index": -1},
        {"index": 2**63},
        {"time": 1.5},
        {"leaf_hash": base64.b64encode(b"\x00" * 31).decode()},
        {"signature": "not base64!"},
        {"key_id": "e48cde9"},
        {"key_id": "zz8cde96"},
        {"origin": ""},
        {"origin": "a\nb"},
        {"extra": 1},
    ],
)
def test_json_receipts_are_parsed_strictly(single, change):
    with pytest.raises(receipts.MalformedReceipt) as exc:
        receipts.from_json(dict(single.to_json(), **change))
    assert reason_of(exc) == "malformed_encoding"


def test_invalid_utf8_origin_bytes_are_malformed(single):
    good = bytearray(single.encode())
    good[16] = 0xFF  # inside the origin
    with pytest.raises(receipts.MalformedReceipt):
        receipts.decode(bytes(good))


def test_a_whole_batch_is_checked_against_its_leaves_with_one_signature():
    leaves = [leaf(i) for i in range(40, 50)]
    batch, _ = receipts.sign_batch(SIGNER, ORIGIN, 40, leaves, TIME)
    receipts.verify_range(batch, [VKEY], ORIGIN, leaves)
    with pytest.raises(receipts.LeafMismatch):
        receipts.verify_range(batch, [VKEY], ORIGIN, [*leaves[:3], leaf(99), *leaves[4:]])
    with pytest.raises(receipts.IndexMismatch):
        receipts.verify_range(batch, [VKEY], ORIGIN, leaves[:-1])
    with pytest.raises(receipts.WrongOrigin):
        receipts.verify_range(batch, [VKEY], ORIGIN + "-b", leaves)


def test_batch_paths_and_root_are_merkle_pys():
    for count in range(1, 70):
        leaves = [leaf(i) for i in range(count)]
        tree = merkle.MemoryNodes()
        tree.append(leaves)
        levels = receipts.range_levels(leaves)
        assert levels[-1] == [merkle.root(tree, count)]
        proofs = merkle.inclusion_proofs(tree, range(count), count)
        assert [receipts.range_path(levels, i) for i in range(count)] == proofs
