"""The map of heads must be the tree docs/formats.md spells out, and its proofs must hold only
for the truth: known-answer vectors (tests/integrity/heads_map_vectors.json, written once by the
brute-force definition below, `python tests/integrity/test_heads_map.py` to regenerate), the
optimised tree against that definition on random batches, and forged proofs each refused for
its precise reason."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.integrity import heads_map as hm
from shared.integrity import sparse_merkle as sm
from shared.integrity.sparse_merkle import Proof, Reason

VECTORS = Path(__file__).with_name("heads_map_vectors.json")
ZERO = bytes(32)
CASES = json.loads(VECTORS.read_text())["maps"] if VECTORS.exists() else []


# --- The definition, brute force: all 256 levels, every level recomputed, nothing stored. ---


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


Level = dict[int, tuple[bytes, int]]  # position at this depth -> (hash, number of keys below)


def brute_levels(entries: Mapping[bytes, bytes]) -> list[Level]:
    """levels[d] for d = 0..256: every non-empty subtree at depth d. A subtree of one key is
    that key's leaf SHA-256(0x02 || key || SHA-256(value)); of none, 32 zero bytes; else
    SHA-256(0x03 || left || right)."""
    level: Level = {
        int.from_bytes(k, "big"): (_sha(b"\x02" + k + _sha(v)), 1) for k, v in entries.items()
    }
    levels = [level]
    for _ in range(256):
        parents: Level = {}
        for position in {p >> 1 for p in level}:
            left = level.get(2 * position, (ZERO, 0))
            right = level.get(2 * position + 1, (ZERO, 0))
            count = left[1] + right[1]
            if count == 1:
                parents[position] = left if left[1] else right
            else:
                parents[position] = (_sha(b"\x03" + left[0] + right[0]), count)
        level = parents
        levels.append(level)
    levels.reverse()
    return levels


def brute_root(entries: Mapping[bytes, bytes]) -> bytes:
    return brute_levels(entries)[0].get(0, (ZERO, 0))[0]


def brute_proof(
    levels: list[Level], entries: Mapping[bytes, bytes], key: bytes
) -> tuple[list[bytes], tuple[bytes, bytes] | None]:
    """Siblings deepest first down to the first depth where the key's subtree holds at most
    one key, and that one key's (key, value hash) when it is another key."""
    bits = int.from_bytes(key, "big")
    stop = next(d for d in range(257) if levels[d].get(bits >> (256 - d), (ZERO, 0))[1] <= 1)
    siblings = [levels[d].get((bits >> (256 - d)) ^ 1, (ZERO, 0))[0] for d in range(stop, 0, -1)]
    other = None
    if levels[stop].get(bits >> (256 - stop), (ZERO, 0))[1] == 1 and key not in entries:
        prefix = bits >> (256 - stop)
        (only,) = [k for k in entries if int.from_bytes(k, "big") >> (256 - stop) == prefix]
        other = (only, _sha(entries[only]))
    return siblings, other


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def brute_proof_json(levels: list[Level], entries: Mapping[bytes, bytes], key: bytes) -> dict:
    siblings, other = brute_proof(levels, entries, key)
    return {
        "siblings": [_b64(s) for s in siblings],
        "other_leaf": None
        if other is None
        else {"key": _b64(other[0]), "value_hash": _b64(other[1])},
    }


def head_bytes(
    kind: str, eid: uuid.UUID, version: int, index: int, leaf: bytes, status: str, cert: int | None
) -> bytes:
    """The head layout of docs/formats.md, written independently of heads_map."""
    fixed = struct.pack(
        ">B16sQQ32sBQ", 1, eid.bytes, version, index, leaf, cert is not None, cert or 0
    )
    return fixed + bytes([len(kind)]) + kind.encode() + bytes([len(status)]) + status.encode()


def _eid(n: int) -> uuid.UUID:
    return uuid.UUID(int=0x0190_0000_0000_7000_8000_0000_0000_0000 + n)


def _key(n: int) -> bytes:
    return _sha(_eid(n).bytes)


def _head(n: int, version: int = 1, status: str = "draft", cert: int | None = None) -> bytes:
    return head_bytes(
        "skill", _eid(n), version, 10 * n + version, _sha(b"entry %d" % n), status, cert
    )


# --- Known-answer vectors. ---


def _case(name: str, entries: dict[bytes, bytes], asked: Sequence[bytes]) -> dict[str, Any]:
    levels = brute_levels(entries)
    return {
        "name": name,
        "entries": [[k.hex(), v.hex()] for k, v in sorted(entries.items())],
        "root": levels[0].get(0, (ZERO, 0))[0].hex(),
        "proofs": [
            {
                "key": k.hex(),
                "value": entries[k].hex() if k in entries else None,
                "proof": brute_proof_json(levels, entries, k),
            }
            for k in asked
        ],
    }


def compute_vectors() -> dict[str, Any]:
    """The vectors, from the brute-force definition and the independent head layout only."""
    one = {_key(1): _head(1)}
    deep = [bytes.fromhex("5a" * 31 + tail) for tail in ("a4", "a5", "a6")]  # 255, 254 bits
    two = {deep[0]: b"left", deep[1]: b"right"}
    three = {_key(n): _head(n) for n in (1, 2, 3)}
    updated = {**three, _key(2): _head(2, 2, "certified", 77)}
    many = {_key(n): _head(n) for n in range(1, 9)}
    many_levels = brute_levels(many)
    absent_empty = absent_other = None
    for n in range(100, 10_000):
        _, other = brute_proof(many_levels, many, _key(n))
        if other is None and absent_empty is None:
            absent_empty = _key(n)
        if other is not None and absent_other is None:
            absent_other = _key(n)
        if absent_empty and absent_other:
            break
    assert absent_empty and absent_other
    update_case = _case("an update", updated, [_key(2), _key(1)])
    update_case["before"] = _case("before", three, [])["entries"]
    update_case["root_before"] = brute_root(three).hex()
    when = datetime(2026, 12, 7, 9, 0, 0, tzinfo=UTC)
    commit = (
        '{"format":"plant-map-commit/1","log_size":1000000,'
        f'"map_root":"{_b64(brute_root(three))}","sealed_at":"2026-12-07T09:00:00Z"}}'
    )
    return {
        "key": {"entity_id": str(_eid(1)), "key": _key(1).hex()},
        "head": {
            "fields": {
                "kind": "skill",
                "entity_id": str(_eid(2)),
                "version": 2,
                "log_index": 22,
                "leaf_hash": _sha(b"entry 2").hex(),
                "status": "certified",
                "certificate_index": 77,
            },
            "bytes": _head(2, 2, "certified", 77).hex(),
        },
        "map_commit": {
            "log_size": 1_000_000,
            "map_root": brute_root(three).hex(),
            "sealed_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "bytes": commit,
        },
        "maps": [
            _case("empty map", {}, [_key(1)]),
            _case("one key", one, [_key(1), _key(2)]),
            _case("two keys sharing 255 bits", two, [deep[0], deep[1], deep[2]]),
            update_case,
            _case("absent keys", many, [absent_empty, absent_other, _key(5)]),
        ],
    }


def _entries(rows: list[list[str]]) -> dict[bytes, bytes]:
    return {bytes.fromhex(k): bytes.fromhex(v) for k, v in rows}


def test_vectors_file_is_the_brute_force_definition():
    assert json.loads(VECTORS.read_text()) == compute_vectors()


def test_vectors_pin_the_first_bytes():
    vectors = json.loads(VECTORS.read_text())
    roots = {case["name"]: case["root"] for case in vectors["maps"]}
    assert roots["empty map"] == "00" * 32
    assert vectors["key"]["key"] == _sha(uuid.UUID(vectors["key"]["entity_id"]).bytes).hex()
    ((key, value),) = _entries(vectors["maps"][1]["entries"]).items()
    assert roots["one key"] == _sha(b"\x02" + key + _sha(value)).hex()
    assert roots["one key"] == "ff12ebb52482dccca4105042a34d44bdf8d44031c62c41cb3bc3619968a7d8ad"
    assert roots["two keys sharing 255 bits"] == (
        "ef45464092944c52ab50ced3c35e28aaba330a7dfaff8eff5a1c8c4b0148dc67"
    )
    assert roots["an update"] == "369addb3dc0ec0eb7bde73d2d2750fea5b7843164e158e6c568f3eed1af70d9e"
    assert (
        roots["absent keys"] == "9537c9605c05a2d4d4e61c59f35f256dd43e6b8ae76764208ea1111605eb6dfe"
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_the_tree_gives_the_vectors(case):
    store = sm.MemoryNodeStore()
    if "before" in case:
        assert store.update(_entries(case["before"])) == bytes.fromhex(case["root_before"])
        changed = {
            k: v
            for k, v in _entries(case["entries"]).items()
            if _entries(case["before"]).get(k) != v
        }
        root = store.update(changed)
    else:
        root = store.update(_entries(case["entries"]))
    assert root == sm.root(store) == bytes.fromhex(case["root"])
    for asked in case["proofs"]:
        key = bytes.fromhex(asked["key"])
        value = None if asked["value"] is None else bytes.fromhex(asked["value"])
        proof = sm.prove(store, key)
        assert hm.proof_to_json(proof) == asked["proof"]
        assert hm.proof_from_json(asked["proof"]) == proof
        sm.check(root, key, value, proof)


def test_head_key_and_commit_vectors():
    vectors = json.loads(VECTORS.read_text())
    assert hm.entity_key(uuid.UUID(vectors["key"]["entity_id"])).hex() == vectors["key"]["key"]
    fields = dict(vectors["head"]["fields"])
    head = hm.Head(
        **{
            **fields,
            "entity_id": uuid.UUID(fields["entity_id"]),
            "leaf_hash": bytes.fromhex(fields["leaf_hash"]),
        }
    )
    assert hm.encode_head(head).hex() == vectors["head"]["bytes"]
    assert hm.decode_head(bytes.fromhex(vectors["head"]["bytes"])) == head
    c = vectors["map_commit"]
    commit = hm.MapCommit(
        c["log_size"],
        bytes.fromhex(c["map_root"]),
        datetime.strptime(c["sealed_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
    )
    assert hm.encode_commit(commit) == c["bytes"].encode("ascii")
    assert hm.decode_commit(c["bytes"].encode("ascii")) == commit
    assert hm.is_commit(c["bytes"].encode("ascii"))


# --- The optimised tree against the definition. ---


@st.composite
def batches(draw: st.DrawFn) -> list[dict[bytes, bytes]]:
    """Batches of changes over a pool of keys in which many share long prefixes."""
    bases = draw(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=6))
    pool = list(bases)
    for base, bit in draw(
        st.lists(st.tuples(st.sampled_from(bases), st.integers(0, 255)), max_size=10)
    ):
        pool.append((int.from_bytes(base, "big") ^ (1 << (255 - bit))).to_bytes(32, "big"))
    value = st.binary(max_size=6)
    batch = st.dictionaries(st.sampled_from(pool), value, min_size=1, max_size=12)
    return draw(st.lists(batch, min_size=1, max_size=4))


@settings(max_examples=150, deadline=None)
@given(batches(), st.binary(min_size=32, max_size=32))
def test_the_tree_is_the_256_level_definition(batch_list, stranger):
    store = sm.MemoryNodeStore()
    model: dict[bytes, bytes] = {}
    for batch in batch_list:
        root = store.update(batch)
        model.update(batch)
        levels = brute_levels(model)
        assert root == levels[0].get(0, (ZERO, 0))[0] == sm.root(store)
        asked = [*model, stranger, *(k[:31] + bytes([k[31] ^ 1]) for k in model)]
        for key, proof in zip(asked, sm.prove_many(store, asked), strict=True):
            value = model.get(key)
            assert hm.proof_to_json(proof) == brute_proof_json(levels, model, key)
            sm.check(root, key, value, proof)
            assert not sm.verify(root, key, (value or b"") + b"x", proof)
            for other in list(model)[:3]:
                if other != key:
                    assert not sm.verify(root, other, value, proof)


def test_batches_in_any_order_give_the_same_root_and_nodes():
    entries = {_key(n): _head(n) for n in range(200)}
    one, two = sm.MemoryNodeStore(), sm.MemoryNodeStore()
    one.update(entries)
    items = list(entries.items())
    for start in range(0, 200, 30):
        two.update(dict(reversed(items[start : start + 30])))
    assert one.nodes == two.nodes
    assert sm.root(one) == brute_root(entries)


class CountingStore(sm.MemoryNodeStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get_paths(self, keys: Sequence[bytes]) -> Mapping[sm.Address, bytes]:
        self.reads += 1
        return super().get_paths(keys)


def test_a_batch_reads_once_and_writes_only_the_changed_paths():
    store = CountingStore()
    store.update({_key(n): _head(n) for n in range(1000)})
    changes = {_key(n): _head(n, 2) for n in range(0, 1000, 100)} | {_key(5000): _head(5000)}
    store.reads = 0
    change = sm.update(store, changes)
    assert store.reads == 1
    store.apply(change)
    paths = store.get_paths(list(changes))
    assert set(paths) <= set(change.written)  # every node on a changed path, once
    moved = set(change.written) - set(paths)  # and the leaf the new key pushed down, no more
    assert len(moved) <= 1
    assert all(store.nodes[a][:1] == sm.LEAF and store.nodes[a][1:33] not in changes for a in moved)
    assert all(store.nodes[a] == n for a, n in change.written.items())


# --- Forged proofs, each refused for its precise reason. ---


@pytest.fixture(scope="module")
def mapped() -> tuple[sm.MemoryNodeStore, bytes, dict[bytes, bytes]]:
    entries = {_key(n): _head(n) for n in range(64)}
    store = sm.MemoryNodeStore()
    return store, store.update(entries), entries


def _reason(root: bytes, key: bytes, value: bytes | None, proof: Proof) -> Reason:
    with pytest.raises(sm.ProofFailure) as failure:
        sm.check(root, key, value, proof)
    return failure.value.reason


def test_a_membership_proof_for_an_absent_key_fails(mapped):
    store, root, entries = mapped
    present, absent = _key(3), _key(999)
    assert _reason(root, absent, entries[present], sm.prove(store, present)) == Reason.ROOT_MISMATCH
    absence = sm.prove(store, absent)
    if absence.other_leaf is not None:
        assert _reason(root, absent, _head(999), absence) == Reason.MEMBERSHIP_WITH_OTHER_LEAF
    assert _reason(root, absent, _head(999), Proof(absence.siblings)) == Reason.ROOT_MISMATCH


def test_a_forged_absence_proof_for_an_existing_key_fails(mapped):
    store, root, entries = mapped
    key = _key(7)
    proof = sm.prove(store, key)
    assert _reason(root, key, None, proof) == Reason.ROOT_MISMATCH  # empty where the leaf is
    as_other = Proof(proof.siblings, (key, sm.value_hash(entries[key])))
    assert _reason(root, key, None, as_other) == Reason.KEY_PRESENT
    stranger = next(k for k in entries if k[0] >> 7 != key[0] >> 7)
    off_path = Proof(proof.siblings, (stranger, sm.value_hash(entries[stranger])))
    assert _reason(root, key, None, off_path) == Reason.OTHER_LEAF_OFF_PATH


def test_a_proof_against_another_maps_root_fails(mapped):
    store, root, entries = mapped
    other = sm.MemoryNodeStore()
    other_root = other.update({**entries, _key(500): _head(500)})
    assert other_root != root
    key = _key(3)
    assert _reason(other_root, key, entries[key], sm.prove(store, key)) == Reason.ROOT_MISMATCH


def test_a_truncated_or_extended_sibling_list_fails(mapped):
    store, root, entries = mapped
    key = _key(11)
    value, siblings = entries[key], sm.prove(store, key).siblings
    assert len(siblings) >= 3
    assert _reason(root, key, value, Proof(siblings[:-1])) == Reason.ROOT_MISMATCH  # top gone
    assert _reason(root, key, value, Proof(siblings[1:])) == Reason.ROOT_MISMATCH  # bottom gone
    assert _reason(root, key, value, Proof((ZERO, *siblings))) == Reason.NOT_CANONICAL
    assert _reason(root, key, value, Proof((_sha(b"x"), *siblings))) == Reason.ROOT_MISMATCH
    assert _reason(root, key, value, Proof((*siblings, ZERO))) == Reason.ROOT_MISMATCH
    assert _reason(root, key, value, Proof((_sha(b"x"),) * 257)) == Reason.TOO_LONG
    assert _reason(root, key, value, Proof((siblings[0][:31], *siblings[1:]))) == Reason.MALFORMED


def test_a_value_edited_by_one_byte_fails(mapped):
    store, root, entries = mapped
    key = _key(20)
    proof, value = sm.prove(store, key), entries[key]
    sm.check(root, key, value, proof)
    for at in (0, 17, 40, len(value) - 1):
        edited = value[:at] + bytes([value[at] ^ 1]) + value[at + 1 :]
        assert _reason(root, key, edited, proof) == Reason.ROOT_MISMATCH


def test_an_empty_map_proves_only_absence():
    store = sm.MemoryNodeStore()
    proof = sm.prove(store, _key(1))
    assert sm.root(store) == ZERO and proof == Proof(())
    sm.check(ZERO, _key(1), None, proof)
    assert _reason(ZERO, _key(1), b"", proof) == Reason.ROOT_MISMATCH


# --- Strict decoding. ---


def test_head_decoding_refuses_anything_but_the_layout():
    good = _head(2, 2, "certified", 77)
    hm.decode_head(good)
    no_cert = _head(2)
    assert hm.decode_head(no_cert).certificate_index is None
    bad = [
        good + b"\x00",
        good[:-1],
        b"\x02" + good[1:],
        good[:65] + b"\x02" + good[66:],
        no_cert[:73] + b"\x01" + no_cert[74:],  # no certificate, yet an index
        good[:17] + bytes(8) + good[25:],  # version 0
        good[:75] + b"S" + good[76:],  # "Skill"
        good[:74] + b"\x00" + good[75:],
    ]
    for data in bad:
        with pytest.raises(hm.MalformedHead):
            hm.decode_head(data)
    with pytest.raises(ValueError):
        hm.encode_head(hm.Head("Skill", _eid(1), 1, 0, ZERO, "draft", None))


def test_commit_decoding_refuses_anything_but_the_exact_bytes():
    when = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    good = hm.encode_commit(hm.MapCommit(12, ZERO, when))
    root64 = _b64(ZERO)
    assert good == (
        b'{"format":"plant-map-commit/1","log_size":12,"map_root":"'
        + root64.encode()
        + b'","sealed_at":"2026-12-07T09:00:00Z"}'
    )
    assert hm.decode_commit(good) == hm.MapCommit(12, ZERO, when)
    for text in [
        good.decode() + "\n",
        good.decode().replace(",", ", "),
        good.decode().replace('"log_size":12', '"log_size":12.0'),
        good.decode().replace('"log_size":12', '"log_size":"12"'),
        good.decode().replace('"log_size":12', '"log_size":-1'),
        good.decode().replace('"log_size":12', '"log_size":true'),
        good.decode().replace("09:00:00Z", "09:00:00.5Z"),
        good.decode().replace("09:00:00Z", "09:00:00+00:00"),
        good.decode().replace("2026-12-07", "2026-13-07"),
        good.decode().replace(root64, root64.rstrip("=")),
        good.decode().replace(root64, _b64(bytes(31))),
        good.decode().replace("/1", "/2"),
        good.decode().replace('{"format"', '{"log_size":12,"format"'),
        good.decode()[:-1] + ',"tenant":"t"}',
        '{"format":"plant-map-commit/1"}',
        "[]",
        "\ufeff" + good.decode(),
    ]:
        with pytest.raises(hm.MalformedCommit):
            hm.decode_commit(text.encode("utf-8"))
    with pytest.raises(ValueError):
        hm.encode_commit(hm.MapCommit(12, ZERO, datetime(2026, 12, 7, 9, 0, 0, 1, tzinfo=UTC)))


def test_proof_decoding_refuses_other_shapes():
    proof = {"siblings": [_b64(_sha(b"a"))], "other_leaf": None}
    assert hm.proof_from_json(proof) == Proof((_sha(b"a"),))
    for doc in [
        {**proof, "extra": 1},
        {"siblings": [_b64(_sha(b"a")).rstrip("=")], "other_leaf": None},
        {"siblings": [_b64(bytes(31))], "other_leaf": None},
        {"siblings": [_b64(ZERO)] * 257, "other_leaf": None},
        {"siblings": "AAAA", "other_leaf": None},
        {"siblings": [], "other_leaf": {"key": _b64(ZERO)}},
        {"siblings": [], "other_leaf": [_b64(ZERO), _b64(ZERO)]},
        [],
    ]:
        with pytest.raises(hm.MalformedProof):
            hm.proof_from_json(doc)


if __name__ == "__main__":
    VECTORS.write_text(json.dumps(compute_vectors(), indent=1) + "\n")
