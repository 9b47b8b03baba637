"""Issue #20, point 1: bundles that hide part of the ledger, or lie in their header, fail.

Each bundle is exported through the real route, then edited as an attacker would edit the
file, then checked by `plant verify` pinned to the registry's key: exit 1, with the failed
item named, never VERIFIED and never a traceback.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from shared.evidence import statement as bundle_statement
from shared.integrity import canonical, dsse, merkle, note, receipts
from shared.registry import writes
from shared.security.principal import Principal
from tests.support.reliability_table import record

Edit = Callable[[dict[str, Any], "History"], Any]


@dataclass
class History:
    """The seeded tenant, then an amendment of s2 and, last of all, a deprecation of s3."""

    tenant: str
    s0: str  # amended, then certified (a certificate, then a certified version)
    s1: str  # certified
    s2: str  # its amendment is the last amendment of the log
    s3: str  # deprecated: the log's last entry


@pytest.fixture
def history(seeded) -> History:
    author = Principal("alice", seeded.tenant, frozenset({"author"}))
    s0, s1, s2, s3 = seeded.skills
    writes.amend(author, "skills", s2, {"description": "f", "amendment_reason": "y"}, '"v1"', "r")
    writes.change_status(
        author, "skills", s3, {"status": "deprecated", "reason": "gone"}, '"v1"', "r"
    )
    return History(seeded.tenant, s0, s1, s2, s3)


def _of(b: dict[str, Any], entity: str) -> list[dict[str, Any]]:
    return [e for e in b["entries"] if e["entity_id"] == entity]


def _without(b: dict[str, Any], dropped: list[dict[str, Any]]) -> dict[str, Any]:
    gone = {e["index"] for e in dropped}
    b["entries"] = [e for e in b["entries"] if e["index"] not in gone]
    return b


def _entries(b: dict[str, Any], entries: list[dict[str, Any]]) -> dict[str, Any]:
    b["entries"] = entries
    return b


def _put(b: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = path.split(".")
    target: Any = b
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    target[int(last) if isinstance(target, list) else last] = value
    return b


def _edited_commit(body: str) -> str:
    """A map commit's bytes with another root (the same length, still a commit)."""
    doc = json.loads(base64.b64decode(body))
    doc["map_root"] = base64.b64encode(bytes(32)).decode()
    return base64.b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()


def _other_head(b: dict[str, Any]) -> str:
    """The proven head value with its status changed (the length kept)."""
    raw = bytearray(base64.b64decode(b["current_proofs"][0]["head"]))
    raw[-1] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _certificate(b: dict[str, Any]) -> dict[str, Any]:
    return next(e for e in b["entries"] if e["entry_type"] == "certificate")


def _after_certificate_of(b: dict[str, Any], entity: str) -> list[dict[str, Any]]:
    first = next(e["index"] for e in _of(b, entity) if e["entry_type"] == "certificate")
    return [e for e in _of(b, entity) if e["index"] >= first]


# (attack, bundle exported, edit, failed item, words of its message)
ATTACKS: list[tuple[str, str, Edit, str, str]] = [
    ("last entry dropped (a deprecation)", "full", lambda b, h: _without(b, _of(b, h.s3)[-1:]),
     "log indexes", "index 15 is not in the bundle"),
    ("the last map commit dropped", "full", lambda b, h: _entries(b, b["entries"][:-1]),
     "log indexes", "index 16 is not in the bundle; the checkpoint holds 17"),
    ("a map commit moved", "full", lambda b, h: _put(b, "entries.5.index", 4) and _put(
        b, "entries.4.index", 5) and _entries(b, [*b["entries"][:4], b["entries"][5],
        b["entries"][4], *b["entries"][6:]]),
     "entry 4", "receipt: index_mismatch: the receipt is for index 5"),  # signed first
    ("a map commit's root edited", "full",
     lambda b, h: _put(b, "entries.5.body", _edited_commit(b["entries"][5]["body"])),
     "entry 5", "its bytes do not hash to its leaf hash"),
    ("a current proof of another head", "s0",
     lambda b, h: _put(b, "current_proofs.0.head", _other_head(b)),
     "current_proofs[0]", "map_proof: root_mismatch"),
    ("last entry dropped (a deprecation)", "s3", lambda b, h: _entries(b, b["entries"][:-1]),
     "coverage", "the signed statement lists 2 entries, the bundle holds 1"),
    ("last amendment dropped", "full", lambda b, h: _without(b, _of(b, h.s2)[-1:]),
     "log indexes", "index 14 is not in the bundle"),
    ("last amendment dropped", "s2", lambda b, h: _entries(b, b["entries"][:-1]),
     "coverage", "the signed statement lists 2 entries, the bundle holds 1"),
    ("a certificate dropped with every later version", "full",
     lambda b, h: _without(b, _after_certificate_of(b, h.s0)),
     "log indexes", "indexes 6..7 are not in the bundle"),
    ("a certificate dropped with every later version", "s0",
     lambda b, h: _without(b, _after_certificate_of(b, h.s0)),
     "coverage", "the signed statement lists 4 entries, the bundle holds 2"),
    ("every entry of one entity dropped", "full", lambda b, h: _without(b, _of(b, h.s1)),
     "log indexes", "index 1 is not in the bundle"),
    ("every entry of one entity dropped", "kind", lambda b, h: _without(b, _of(b, h.s1)),
     "coverage", "the signed statement lists 11 entries, the bundle holds 8"),
    ("all entries dropped", "full", lambda b, h: _entries(b, []),
     "log indexes", "indexes 0..16 are not in the bundle; the checkpoint holds 17"),
    ("all entries dropped", "s0", lambda b, h: _entries(b, []),
     "coverage", "the signed statement lists 4 entries, the bundle holds 0"),
    ("entries reversed", "full", lambda b, h: _entries(b, b["entries"][::-1]),
     "entry 15", "it comes after index 16: entries must appear once each, in log order"),
    ("entries reversed", "s0", lambda b, h: _entries(b, b["entries"][::-1]),
     "entry 6", "it comes after index 7: entries must appear once each, in log order"),
    ("entries duplicated", "full", lambda b, h: _entries(b, b["entries"][:3] + b["entries"][2:]),
     "entry 2", "it comes after index 2: entries must appear once each, in log order"),
    ("entries duplicated", "s0", lambda b, h: _entries(b, b["entries"] * 2),
     "entry 0", "it comes after index 7: entries must appear once each, in log order"),
    ("previous_checkpoint null", "full", lambda b, h: _put(b, "previous_checkpoint", None),
     "statement", "the bundle's previous_checkpoint None is not the signed"),
    ("previous_checkpoint set to the latest", "full",
     lambda b, h: _put(b, "previous_checkpoint", {**b["checkpoint"], "consistency_proof": []}),
     "statement", "the bundle's previous_checkpoint {'size': 17"),
    ("unknown field added", "full", lambda b, h: _put(b, "signed_by", "the auditor"),
     "bundle", "unknown field 'signed_by'"),
    ("unknown field added", "full", lambda b, h: _put(b, "entries.3.note", "ok"),
     "entries[3]", "unknown field 'note'"),
    ("unknown field added", "full", lambda b, h: _put(b, "checkpoint.witness", "w"),
     "checkpoint", "unknown field 'witness'"),
    ("unknown field added", "full", lambda b, h: _put(b, "filters.status", "certified"),
     "filters", "unknown field 'status'"),
    ("unknown field added", "full", lambda b, h: _put(b, "previous_checkpoint.ok", True),
     "previous_checkpoint", "unknown field 'ok'"),
    ("unknown field added", "full", lambda b, h: _put(b, "statement.signatures.0.cert", "x"),
     "statement.signatures[0]", "unknown field 'cert'"),
    ("tenant edited", "full", lambda b, h: _put(b, "tenant", "t-someone-else"),
     "tenant", "is not the log of its tenant 't-someone-else'"),
    ("tenant edited", "full",
     lambda b, h: _put(_put(b, "tenant", "t-x"), "origin", b["origin"].rsplit("/", 1)[0] + "/t-x"),
     "checkpoint", "it names log"),
    ("filters edited", "full",
     lambda b, h: _put(_entries(b, _of(b, h.s0)), "filters.entity", h.s0),
     "statement", "the bundle's filters {'kind': None, 'entity':"),
    ("filters edited", "s0", lambda b, h: _put(b, "filters.entity", None),
     "statement", "the bundle's filters {'kind': None, 'entity': None} is not the signed"),
    ("filters edited", "kind", lambda b, h: _put(b, "filters.kind", "job_role"),
     "statement", "the bundle's filters {'kind': 'job_role', 'entity': None} is not the signed"),
    ("a certificate entry's entity_id pointed elsewhere", "full",
     lambda b, h: _put(_certificate(b), "entity_id", h.s1) and b,
     "entry 6", "its entity_id says"),
    ("a certificate entry's version pointed elsewhere", "full",
     lambda b, h: _put(_certificate(b), "version", 1) and b,
     "entry 6", "its version says 1 but its bytes say 2"),
    ("a version entry's entity_id pointed elsewhere", "s0",
     lambda b, h: _put(b, "entries.0.entity_id", h.s1),
     "entry 0", "its entity_id says"),
    ("duplicated JSON key", "full",
     lambda b, h: json.dumps(b).encode()[:-1] + b', "entries": []}',
     "bundle file", "duplicate key 'entries'"),
    ("old format (plant-evidence-bundle/1)", "full",
     lambda b, h: {**_put(b, "format", "plant-evidence-bundle/1"), "statement": None},
     "format", "plant-evidence-bundle/1 is no longer supported"),
]  # fmt: skip


@pytest.fixture
def exported(export_bundle, history) -> Callable[[str], dict[str, Any]]:
    def of(which: str) -> dict[str, Any]:
        query = {"full": "", "kind": "?kind=skills"}.get(which)
        if query is None:
            query = f"?entity={getattr(history, which)}"
        return export_bundle(history.tenant, query)

    return of


def _refused(out: str, code: int, item: str, words: str) -> None:
    assert code == 1, out
    assert "Traceback" not in out
    assert not any(line.startswith("VERIFIED") for line in out.splitlines()), out
    heads = (f"FAIL  {item}: ", f"FAIL  {item} (")  # an entry's name is followed by its labels
    named = [x for x in out.splitlines() if x.startswith(heads) and words in x]
    assert named, out


@pytest.mark.parametrize(
    ("attack", "which", "edit", "item", "words"), ATTACKS, ids=[f"{a[0]}-{a[1]}" for a in ATTACKS]
)
def test_an_edited_bundle_fails_naming_what_is_wrong(
    request, history, exported, plant_verify, attack, which, edit, item, words
):
    genuine = exported(which)
    assert plant_verify(genuine)[0] == 0
    assert len(exported("full")["entries"]) == 17  # the indexes named above (13: the audit's)
    code, out = plant_verify(edit(copy.deepcopy(genuine), history))
    _refused(out, code, item, words)
    record(request.node, f"bundle: {attack}", 1, f"plant verify exit 1: {item}: {words}")


MALFORMED: list[tuple[str, str, Any, str, str]] = [
    ("entry index 1.0", "entries.1.index", 1.0, "entries[1].index",
     "must be an integer, not a number with a fraction (1.0)"),
    ("entry index \"1\"", "entries.1.index", "1", "entries[1].index",
     "must be an integer, not a string ('1')"),
    ("entry index null", "entries.1.index", None, "entries[1].index",
     "must be an integer, not null"),
    ("entry index [1]", "entries.1.index", [1], "entries[1].index",
     "must be an integer, not an array ([1])"),
    ("entry index true", "entries.1.index", True, "entries[1].index",
     "must be an integer, not a boolean"),
    ("entry index -1", "entries.1.index", -1, "entries[1].index", "must be at least 0"),
    ("format a number", "format", 2, "format", "not a plant-evidence-bundle/3 bundle"),
    ("tenant null", "tenant", None, "tenant", "must be a string, not null"),
    ("checkpoint a list", "checkpoint", [], "checkpoint", "must be an object"),
    ("checkpoint size a string", "checkpoint.size", "12", "checkpoint.size",
     "must be an integer"),
    ("checkpoint root a number", "checkpoint.root", 5, "checkpoint.root", "must be a string"),
    ("public keys a string", "public_keys", "k", "public_keys", "must be an array"),
    ("entries an object", "entries", {}, "entries", "must be an array, not an object"),
    ("entry a string", "entries.0", "x", "entries[0]", "must be an object, not a string"),
    ("entry version 0", "entries.0.version", 0, "entries[0].version", "must be at least 1"),
    ("entry body a number", "entries.0.body", 5, "entries[0].body", "must be a string"),
    ("entry body not base64", "entries.0.body", "%%%", "entries[0].body", "is not base64"),
    ("entry leaf hash short", "entries.0.leaf_hash", "AAAA", "entries[0].leaf_hash",
     "must be 32 bytes, not 3"),
    ("entry proof a string", "entries.0.inclusion_proof", "x", "entries[0].inclusion_proof",
     "must be an array of hashes"),
    ("entry proof hash null", "entries.0.inclusion_proof.0", None,
     "entries[0].inclusion_proof[0]", "must be a string, not null"),
    ("entry id not a UUID", "entries.0.entity_id", "x", "entries[0].entity_id",
     "must be a UUID"),
    ("entry type unknown", "entries.0.entry_type", "map", "entries[0].entry_type",
     "must be one of ['audit', 'certificate', 'map_commit', 'version']"),
    ("entity type a list", "entries.0.entity_type", ["skill"], "entries[0].entity_type",
     "must be a string"),
    ("filters a list", "filters", [], "filters", "must be an object, not an array"),
    ("filter kind unknown", "filters.kind", "robot", "filters.kind", "must be one of"),
    ("statement null", "statement", None, "statement", "must be an object, not null"),
    ("statement signatures an object", "statement.signatures", {}, "statement.signatures",
     "must be an array"),
    ("statement key id a list", "statement.signatures.0.keyid", [1],
     "statement.signatures[0].keyid", "must be a string, not an array"),
    ("statement payload null", "statement.payload", None, "statement.payload",
     "must be a string, not null"),
    ("consistency proof null", "previous_checkpoint.consistency_proof", None,
     "previous_checkpoint.consistency_proof", "must be an array of hashes, not null"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "path", "value", "item", "words"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
def test_a_malformed_field_is_a_named_failure(
    request, history, exported, plant_verify, what, path, value, item, words
):
    code, out = plant_verify(_put(exported("full"), path, value))
    _refused(out, code, item, words)
    if what.startswith("entry index"):
        attack = 'bundle: entry index 1.0, "1", null, [1], true or -1'
        outcome = "plant verify exit 1: entries[1].index: must be an integer (at least 0)"
    else:
        attack = "bundle: a wrong type in each field"
        outcome = "plant verify exit 1: the field named (e.g. checkpoint.size: must be an integer)"
    record(request.node, attack, 1, outcome)


def _raw(b: dict[str, Any]) -> bytes:
    return json.dumps(b).encode()


BROKEN_FILES: list[tuple[str, Callable[[bytes], bytes], str]] = [
    ("100,000 nested brackets", lambda raw: b"[" * 100_000 + b"]" * 100_000,
     "nested deeper than 32 levels"),
    ("100,000 nested brackets in a field",
     lambda raw: raw[:-1] + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     "nested deeper than 32 levels"),
    ("truncated file", lambda raw: raw[: len(raw) // 2], "not a well-formed JSON document"),
    ("empty file", lambda raw: b"", "not a well-formed JSON document"),
    ("not UTF-8", lambda raw: raw.replace(b'"tenant": "', b'"tenant": "\xff', 1), "not UTF-8"),
    ("a 5,000-digit integer", lambda raw: raw.replace(b'"size": ', b'"size": ' + b"9" * 5000, 1),
     "not a well-formed JSON document"),
    ("an integer past 2**53", lambda raw: raw.replace(b'"size": ', b'"size": 9007199254740993', 1),
     "integer outside the exact range"),
    ("NaN", lambda raw: raw.replace(b'"size": ', b'"size": NaN, "y": ', 1), "NaN is not valid"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "damage", "words"), BROKEN_FILES, ids=[f[0] for f in BROKEN_FILES]
)
def test_a_broken_file_is_a_named_failure(
    request, history, exported, plant_verify, what, damage, words
):
    code, out = plant_verify(damage(_raw(exported("full"))))
    _refused(out, code, "bundle file", words)
    record(request.node, f"bundle: {what}", 1, f"plant verify exit 1: bundle file: {words}")


def _forge(genuine: dict[str, Any], mallory: note.Signer) -> dict[str, Any]:
    """The last entry dropped and everything re-signed, self-consistently, with a fresh key:
    certificates, the tree and checkpoint, the statement; the bundle's keys replaced."""
    forged = copy.deepcopy(genuine)
    forged["current_proofs"] = None  # the forger cannot re-sign them into its own log's map
    entries = forged["entries"][:-1]
    for entry in entries:
        if entry["entry_type"] == "certificate":
            envelope = canonical.loads(base64.b64decode(entry["body"]))
            payload = base64.b64decode(envelope["payload"])
            resigned = dsse.sign_envelope(envelope["payloadType"], payload, mallory)
            entry["body"] = base64.b64encode(canonical.dumps(resigned)).decode()
        leaf = merkle.leaf_hash(base64.b64decode(entry["body"]))
        entry["leaf_hash"] = base64.b64encode(leaf).decode()
        entry["receipt"] = receipts.sign_entry(mallory, forged["origin"], entry["index"], leaf)
        entry["receipt"] = entry["receipt"].to_json()
    tree = merkle.MemoryNodes()
    tree.append([base64.b64decode(e["leaf_hash"]) for e in entries])
    size = len(entries)
    for entry in entries:
        proof = merkle.inclusion_proof(tree, entry["index"], size)
        entry["inclusion_proof"] = [base64.b64encode(h).decode() for h in proof]
    root = merkle.root(tree, size)
    body = note.checkpoint_body(forged["origin"], size, root)
    forged["checkpoint"] = {
        "note": note.sign_note(body, [mallory]),
        "size": size,
        "root": base64.b64encode(root).decode(),
    }
    forged["previous_checkpoint"] = None
    forged["public_keys"] = [mallory.vkey]
    forged["entries"] = entries
    coverage = bundle_statement.Coverage()
    for entry in entries:
        coverage.add(entry["index"], base64.b64decode(entry["leaf_hash"]))
    forged["statement"] = bundle_statement.sign(forged, coverage, mallory)
    return forged


def test_a_bundle_forged_with_a_fresh_key_is_never_verified(
    request, history, exported, plant_verify
):
    genuine = exported("full")
    name = note.Verifier.from_vkey(genuine["public_keys"][0]).name  # the registry's key name
    mallory = note.Signer.from_seed(name, b"\x07" * 32)
    forged = _forge(genuine, mallory)
    # The forgery holds together: with the forger's own key pinned it would verify.
    assert plant_verify(forged, "--key", mallory.vkey, pinned=False)[0] == 0
    code, out = plant_verify(forged, pinned=False)
    _refused(out, code, "pinned key", "no key is pinned")
    assert out.splitlines()[-1] == "NOT VERIFIED: 1 of 1 checks fail"
    code, out = plant_verify(forged)
    _refused(out, code, "checkpoint", "its signature does not verify with the pinned keys")
    # The genuine checkpoint kept, only the statement re-signed over a shorter entry list.
    shorter = copy.deepcopy(genuine)
    shorter["entries"] = shorter["entries"][:-1]
    coverage = bundle_statement.Coverage()
    for entry in shorter["entries"]:
        coverage.add(entry["index"], base64.b64decode(entry["leaf_hash"]))
    shorter["statement"] = bundle_statement.sign(shorter, coverage, mallory)
    code, out = plant_verify(shorter)
    _refused(out, code, "statement", "it does not verify with the pinned keys")
    _refused(out, code, "log indexes", "index 16 is not in the bundle")
    record(
        request.node,
        "bundle: forged and signed with a fresh key, no --key",
        1,
        "plant verify exit 1: pinned key: no key is pinned (never VERIFIED)",
    )
    record(
        request.node,
        "bundle: forged and signed with a fresh key, --key the registry's",
        1,
        "plant verify exit 1: checkpoint: its signature does not verify with the pinned keys",
    )


def _receipt_of(b: dict[str, Any], position: int, receipt: Any) -> dict[str, Any]:
    b["entries"][position]["receipt"] = receipt
    return b


def _flipped(receipt: dict[str, Any]) -> dict[str, Any]:
    signature = bytearray(base64.b64decode(receipt["signature"]))
    signature[0] ^= 1
    return {**receipt, "signature": base64.b64encode(bytes(signature)).decode()}


RECEIPT_ATTACKS: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]], str]] = [
    ("receipt removed", lambda b: _receipt_of(b, 3, None), "receipt_missing"),
    (
        "another entry's receipt",
        lambda b: _receipt_of(b, 3, b["entries"][2]["receipt"]),
        "index_mismatch",
    ),
    (
        "signature flipped",
        lambda b: _receipt_of(b, 3, _flipped(b["entries"][3]["receipt"])),
        "bad_signature",
    ),
    (
        "receipt with a field too many",
        lambda b: _receipt_of(b, 3, {**b["entries"][3]["receipt"], "extra": 1}),
        "malformed_encoding",
    ),
    (
        "receipt of another log",
        lambda b: _receipt_of(b, 3, {**b["entries"][3]["receipt"], "origin": "x/other"}),
        "bad_signature",
    ),
]


@pytest.mark.parametrize(
    ("attack", "edit", "reason"), RECEIPT_ATTACKS, ids=[a[0] for a in RECEIPT_ATTACKS]
)
def test_a_bad_receipt_in_a_bundle_is_a_named_failure(
    request, exported, plant_verify, attack, edit, reason
):
    genuine = exported("full")
    assert all(e["receipt"] is not None for e in genuine["entries"])
    assert plant_verify(genuine)[0] == 0
    edited = edit(copy.deepcopy(genuine))
    code, out = plant_verify(edited)
    _refused(out, code, "entry 3", f"receipt: {reason}")
    record(request.node, f"bundle: {attack}", 1, f"plant verify exit 1: entry 3 receipt: {reason}")
