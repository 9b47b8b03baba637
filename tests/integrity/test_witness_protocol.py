"""C2SP tlog-witness add-checkpoint: strict request bytes, the response forms, and the
witness's decision for each status the C2SP text names, split views included."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from shared.integrity import merkle
from shared.integrity import witness_protocol as wp
from shared.integrity.cosignature import WitnessSigner, add_cosignatures, check_cosignatures
from shared.integrity.note import Signer, checkpoint_body, sign_note

TLOG = json.loads((Path(__file__).resolve().parents[1] / "assets" / "tlog.json").read_text())
ORIGIN = TLOG["key_name"]
LOG = Signer.from_seed(ORIGIN, bytes.fromhex(TLOG["ed25519_seed_hex"]))
IMPOSTOR = Signer.from_seed(ORIGIN, b"\x09" * 32)
WITNESS = WitnessSigner.from_seed("witness.plant.example/w1", b"\x01" * 32)
TRUSTED = {ORIGIN: [LOG.verifier]}

C2SP_EXAMPLE = (
    "old 20852014\n"
    "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
    "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n"
    "5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n"
    "/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n"
    "\n"
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5"
    "/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "\u2014 example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks"
    "+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n"
)


def _tree(n: int, tag: bytes = b"entry") -> merkle.MemoryNodes:
    nodes = merkle.MemoryNodes()
    nodes.append([merkle.leaf_hash(tag + b" %d" % i) for i in range(n)])
    return nodes


TREE = _tree(100)


def _note(size: int, root: bytes | None = None, signer: Signer = LOG) -> str:
    root = merkle.root(TREE, size) if root is None else root
    return sign_note(checkpoint_body(ORIGIN, size, root), [signer])


def _request(old: int, new: int, note: str | None = None) -> wp.AddCheckpoint:
    proof = merkle.consistency_proof(TREE, old, new) if old > 0 else []
    body = wp.format_add_checkpoint(old, proof, note or _note(new))
    return wp.parse_add_checkpoint(body)


def _stored(size: int) -> wp.StoredCheckpoint:
    return wp.StoredCheckpoint(size, merkle.root(TREE, size))


def test_the_c2sp_example_request_parses_and_formats_back() -> None:
    request = wp.parse_add_checkpoint(C2SP_EXAMPLE.encode())
    assert request.old_size == 20852014 and len(request.proof) == 4
    assert (request.origin, request.checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    assert wp.format_add_checkpoint(20852014, request.proof, request.note) == C2SP_EXAMPLE.encode()


def test_request_bytes_known_answer() -> None:
    proof = merkle.consistency_proof(TREE, 3, 7)
    note = _note(7)
    body = wp.format_add_checkpoint(3, proof, note)
    wanted = "old 3\n" + "".join(f"{p}\n" for p in TLOG["consistency"][1]["path"]) + "\n" + note
    assert TLOG["consistency"][1]["old"] == 3 and TLOG["consistency"][1]["new"] == 7
    assert body == wanted.encode()


def test_63_proof_lines_parse_and_64_are_refused() -> None:
    note = _note(5)
    lines = "".join(base64.b64encode(bytes([i]) * 32).decode() + "\n" for i in range(64))
    ok = f"old 1\n{''.join(lines.splitlines(keepends=True)[:63])}\n{note}".encode()
    assert len(wp.parse_add_checkpoint(ok).proof) == 63
    with pytest.raises(wp.WitnessProtocolError, match="more than 63"):
        wp.parse_add_checkpoint(f"old 1\n{lines}\n{note}".encode())
    with pytest.raises(wp.WitnessProtocolError, match="at most 63"):
        wp.format_add_checkpoint(1, [b"\x00" * 32] * 64, note)


@pytest.mark.parametrize(
    "edit",
    [
        lambda b: b.replace(b"\n", b"\r\n"),  # CRLF line ends
        lambda b: b.replace(b"\n\n", b"\n", 1),  # the empty line after the proof is missing
        lambda b: b.replace(b"old 3", b"old 03"),
        lambda b: b.replace(b"old 3", b"old  3"),
        lambda b: b.replace(b"old 3", b"old -3"),
        lambda b: b.replace(b"old 3", b"Old 3"),
        lambda b: b.replace(b"=\n", b"\n", 1),  # unpadded base64
        lambda b: b[:-1],  # no final newline
        lambda b: b + b"\n",  # a trailing blank line: no signature after it
        lambda b: b[: b.rindex(b"\n\n") + 2],  # no signature line
        lambda b: b.replace(b"\xe2\x80\x94", b"-"),  # not an em dash
        lambda b: b + b"\xff\n",
    ],
)
def test_malformed_request_bodies_are_refused(edit: object) -> None:
    body = wp.format_add_checkpoint(3, merkle.consistency_proof(TREE, 3, 7), _note(7))
    wp.parse_add_checkpoint(body)
    with pytest.raises(wp.WitnessProtocolError):
        wp.parse_add_checkpoint(edit(body))  # type: ignore[operator]


def test_first_checkpoint_is_cosigned_and_persisted() -> None:
    decision = wp.decide(_request(0, 7), TRUSTED, None)
    assert (decision.status, decision.persist) == (200, _stored(7))


def test_growth_with_a_valid_proof_is_cosigned() -> None:
    decision = wp.decide(_request(7, 100), TRUSTED, _stored(7))
    assert (decision.status, decision.persist, decision.split_view) == (200, _stored(100), False)


def test_the_same_checkpoint_again_is_cosigned_again() -> None:
    assert wp.decide(_request(7, 7), TRUSTED, _stored(7)).status == 200


def test_unknown_origin_is_404() -> None:
    assert wp.decide(_request(0, 7), {"other.example/log": [LOG.verifier]}, None).status == 404


def test_no_trusted_signature_is_403() -> None:
    decision = wp.decide(_request(0, 7, _note(7, signer=IMPOSTOR)), TRUSTED, None)
    assert decision.status == 403


def test_a_trusted_key_whose_signature_fails_is_403() -> None:
    note = _note(7)
    text, sig = note.split("\n\n")
    blob = bytearray(base64.b64decode(sig.split(" ")[2]))
    blob[-1] ^= 1
    forged = f"{text}\n\n\u2014 {ORIGIN} {base64.b64encode(bytes(blob)).decode()}\n"
    assert wp.decide(_request(0, 7, forged), TRUSTED, None).status == 403


def test_extra_unknown_signature_lines_do_not_stop_the_witness() -> None:
    text = checkpoint_body(ORIGIN, 7, merkle.root(TREE, 7))
    other = WitnessSigner.from_seed("someone.example/w", b"\x05" * 32)
    note = add_cosignatures(_note(7), [other.cosign(text, 9).line])
    assert wp.decide(_request(0, 7, note), TRUSTED, None).status == 200


def test_old_size_above_the_checkpoint_is_400() -> None:
    body = wp.format_add_checkpoint(8, [], _note(7))
    assert wp.decide(wp.parse_add_checkpoint(body), TRUSTED, _stored(8)).status == 400


@pytest.mark.parametrize(("old", "stored", "held"), [(5, None, 0), (5, 7, 7), (0, 7, 7)])
def test_old_size_not_the_stored_size_is_409_with_that_size(
    old: int, stored: int | None, held: int
) -> None:
    state = _stored(stored) if stored else None
    decision = wp.decide(_request(old, 10), TRUSTED, state)
    assert (decision.status, decision.stored_size) == (409, held)


def test_a_bad_proof_is_422() -> None:
    proof = merkle.consistency_proof(TREE, 7, 100)
    proof[0] = bytes(32)
    body = wp.format_add_checkpoint(7, proof, _note(100))
    decision = wp.decide(wp.parse_add_checkpoint(body), TRUSTED, _stored(7))
    assert decision.status == 422 and decision.persist is None


def test_a_proof_from_size_0_is_422() -> None:
    body = wp.format_add_checkpoint(0, [bytes(32)], _note(7))
    assert wp.decide(wp.parse_add_checkpoint(body), TRUSTED, None).status == 422


def test_size_0_needs_the_empty_root() -> None:
    assert wp.decide(_request(0, 0, _note(0, merkle.EMPTY_ROOT)), TRUSTED, None).status == 200
    decision = wp.decide(_request(0, 0, _note(0, bytes(32))), TRUSTED, None)
    assert decision.status == 422


def test_split_view_same_size_other_root_is_refused_and_reported() -> None:
    fork = _tree(7, b"forked")
    note = _note(7, merkle.root(fork, 7))
    decision = wp.decide(_request(7, 7, note), TRUSTED, _stored(7))
    assert (decision.status, decision.split_view, decision.persist) == (422, True, None)
    assert "split view" in decision.reason


def test_split_view_inconsistent_growth_is_refused_and_reported() -> None:
    fork = _tree(100, b"forked")  # the log signs a tree that does not extend the cosigned one
    note = _note(100, merkle.root(fork, 100))
    body = wp.format_add_checkpoint(7, merkle.consistency_proof(fork, 7, 100), note)
    decision = wp.decide(wp.parse_add_checkpoint(body), TRUSTED, _stored(7))
    assert (decision.status, decision.split_view, decision.persist) == (422, True, None)
    assert "split view" in decision.reason


def test_rfc9162_consistency_vectors_verify_and_tampered_ones_do_not() -> None:
    roots = {int(k): base64.b64decode(v) for k, v in TLOG["roots"].items()}
    for case in TLOG["consistency"]:
        proof = [base64.b64decode(p) for p in case["path"]]
        old, new = case["old"], case["new"]
        assert merkle.verify_consistency(old, new, roots[old], roots[new], proof)
        if proof:
            assert not merkle.verify_consistency(old, new, roots[old], roots[new], proof[:-1])
            bad = [bytes(32), *proof[1:]]
            assert not merkle.verify_consistency(old, new, roots[old], roots[new], bad)


def test_200_response_lines_verify_with_the_witness_key_in_the_client() -> None:
    request = _request(0, 7)
    body = wp.cosign_response(request, [WITNESS], 1_700_000_000)
    stranger = WitnessSigner.from_seed("stranger.example/w", b"\x06" * 32)
    body += wp.cosign_response(request, [stranger], 1_700_000_000)
    reply = wp.read_reply(200, "text/plain", body, request.note, WITNESS.key)
    assert reply.error is None and len(reply.cosignatures) == 1
    cosigned = add_cosignatures(request.note, reply.cosignatures)
    report = check_cosignatures(cosigned, [WITNESS.key])
    assert report.valid == {WITNESS.name: 1_700_000_000}


def test_200_response_over_another_checkpoint_is_not_accepted() -> None:
    body = wp.cosign_response(_request(0, 8), [WITNESS], 1_700_000_000)
    reply = wp.read_reply(200, "text/plain", body, _note(7), WITNESS.key)
    assert reply.cosignatures == () and "does not verify" in (reply.error or "")


def test_409_response_bytes_and_reading() -> None:
    assert wp.format_size_body(12) == b"12\n"
    reply = wp.read_reply(409, "text/x.tlog.size", b"12\n", _note(7), WITNESS.key)
    assert reply.witness_size == 12
    assert wp.read_reply(409, "text/plain", b"12\n", _note(7), WITNESS.key).error
    for bad in (b"12", b"012\n", b"-1\n", b"1 2\n"):
        assert wp.read_reply(409, "text/x.tlog.size", bad, _note(7), WITNESS.key).error
