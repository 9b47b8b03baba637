"""The heads map in memory (``shared.integrity.map_memory``): the compiled tree
(native/plant_map_native.c) and its pure-Python twin over ``sparse_merkle`` give the same root
after every batch and the same strata in the same order, each the row ``map_strata.encode``
makes of ``sparse_merkle``'s nodes, by prefix as the database orders bytea; on random sets,
keys sharing long prefixes (chains across strata), one key, none, keys updated and repeated.
The C module's SHA-256 (with the CPU's SHA extensions and without) is held to hashlib's."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys

import plant_map_native
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.integrity import map_memory, sparse_merkle
from shared.storage import map_strata


def _records(pairs: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(key + value for key, value in pairs)


def _both(batches: list[list[tuple[bytes, bytes]]]) -> bytes:
    """Each batch into both maps: the same root each time, then the same strata, which are
    the twin's nodes cut and encoded as the store does, in prefix order."""
    compiled, pure = plant_map_native.Tree(), map_memory.PureMap()
    root = compiled.root()
    assert root == sparse_merkle.EMPTY
    for batch in batches:
        root = compiled.update(_records(batch))
        assert root == pure.update(_records(batch))
    strata = list(compiled.strata())
    assert strata == list(pure.strata())
    grouped = map_strata.group(pure.store.nodes)
    assert strata == [(p, map_strata.encode(grouped[p])) for p in sorted(grouped)]
    return root


@pytest.fixture(params=[True, False], ids=["sha-extensions", "portable-sha"])
def sha_code(request):
    """Both SHA-256 paths of the C module (the extensions only where the CPU has them)."""
    yield plant_map_native.use_sha_extensions(request.param)
    plant_map_native.use_sha_extensions(True)


def test_the_compiled_map_is_installed_and_chosen():
    # `make` installs native/ through requirements.txt: a build that failed shows here
    assert map_memory.NATIVE is plant_map_native
    assert isinstance(map_memory.new(), plant_map_native.Tree)
    assert isinstance(map_memory.new(pure=True), map_memory.PureMap)
    forced = subprocess.run(
        [sys.executable, "-c", "from shared.integrity import map_memory; print(map_memory.NATIVE)"],
        env={**os.environ, "PLANT_AUDIT_PURE": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert forced.stdout.strip() == "None"


def test_sha256_is_hashlibs_on_every_padding_case(sha_code):
    rng = random.Random(7)
    for size in [0, 1, 31, 32, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 1000]:
        data = rng.randbytes(size)
        assert plant_map_native.sha256(data) == hashlib.sha256(data).digest(), size


def test_known_answers_empty_one_key_and_two_sharing_a_long_prefix(sha_code):
    assert _both([]) == sparse_merkle.EMPTY
    assert _both([[]]) == sparse_merkle.EMPTY
    key, value = bytes(range(32)), hashlib.sha256(b"value").digest()
    leaf = sparse_merkle.node_hash(sparse_merkle.leaf_node(key, value))
    assert _both([[(key, value)]]) == leaf
    tree = plant_map_native.Tree()
    tree.update(_records([(key, value)]))
    assert list(tree.strata()) == [(b"", b"\x01" + sparse_merkle.leaf_node(key, value))]
    # two keys differing only in the last bit: 255 one-child nodes above their parent
    a, b = bytes(31) + b"\x00", bytes(31) + b"\x01"
    root = _both([[(a, value), (b, value)]])
    store = sparse_merkle.MemoryNodeStore()
    assert root == store.update({a: b"value", b: b"value"})
    tree = plant_map_native.Tree()
    tree.update(_records([(a, value), (b, value)]))
    strata = list(tree.strata())
    # the chain 0-254 down the left edge (positions 1, 2, 4, ... 64 in each stratum), their
    # parent at 255 (position 128 of stratum 31), each leaf at 256 the top of a stratum 32
    assert [prefix for prefix, _ in strata] == [bytes(n) for n in range(33)] + [b]
    assert [row[::66] for _, row in strata] == [bytes(1 << k for k in range(8))] * 32 + [
        b"\x01"
    ] * 2
    assert len(tree) == 2


def test_updates_repeats_and_batches_agree_with_sparse_merkle(sha_code):
    rng = random.Random(11)
    keys = [rng.randbytes(32) for _ in range(40)]
    prefix = rng.randbytes(30)
    keys += [prefix + rng.randbytes(2) for _ in range(20)]  # a crowd 240 bits deep
    store = sparse_merkle.MemoryNodeStore()
    batches = []
    for _ in range(8):
        batch = [(rng.choice(keys), rng.randbytes(32)) for _ in range(rng.randrange(0, 25))]
        batches.append(batch)
    root = _both(batches)
    for batch in batches:
        last = dict(batch)  # a key repeated in a batch keeps its last value
        store.apply(sparse_merkle.update_hashed(store, last))
    assert root == sparse_merkle.root(store)


_HASH = st.binary(min_size=32, max_size=32)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.tuples(_HASH, _HASH)), max_size=4))
def test_random_batches_give_the_same_roots_and_strata(batches):
    _both(batches)


def test_a_large_map_is_the_same_node_for_node():
    rng = random.Random(3)
    batches = [[(rng.randbytes(32), rng.randbytes(32)) for _ in range(n)] for n in (3000, 10, 500)]
    _both(batches)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.tuples(_HASH, _HASH)), max_size=4), st.lists(st.tuples(_HASH, _HASH)))
def test_a_batch_put_in_parts_gives_the_root_and_strata_of_the_batch_whole(parts, last):
    """``put`` then ``update`` (a commit's heads a part at a time, map_check.Replay): the
    root and strata of the parts' records updated at once, in both maps."""
    whole = _both([[pair for part in [*parts, last] for pair in part]])
    compiled, pure = plant_map_native.Tree(), map_memory.PureMap()
    for part in parts:
        assert compiled.put(_records(part)) is None
        pure.put(_records(part))
    assert compiled.update(_records(last)) == pure.update(_records(last)) == whole
    assert list(compiled.strata()) == list(pure.strata())


def test_bad_records_and_a_map_changed_while_read_are_refused():
    for made in (plant_map_native.Tree(), map_memory.PureMap()):
        with pytest.raises(ValueError, match="64 bytes"):
            made.update(bytes(63))
        with pytest.raises(ValueError, match="64 bytes"):
            made.put(bytes(65))
    tree = plant_map_native.Tree()
    tree.update(bytes(64) + b"\x80" + bytes(63) + bytes(31) + b"\x01" + bytes(32))
    strata = tree.strata()
    next(strata)
    tree.update(b"\x40" + bytes(63))
    with pytest.raises(RuntimeError, match="changed while its strata were read"):
        next(strata)
