"""A seal's map update over the strata it read: the new root and the rewritten strata.

Why compiled: a seal of 10,000 keys into 1,000,000 rehashes ~100,000 nodes and splices them
into ~10,800 strata; in Python (``sparse_merkle.update_hashed`` over ``map_strata.Strata``,
then ``Strata.merged`` a stratum at a time) that was ~2.8 s of the seal, one interpreter call
a node. ``plant_map_native.update_strata`` (native/strata_update.c) does the same walk over
the same rows with its own SHA-256; ``pure`` below is its twin, and
tests/storage/test_map_update.py holds the two to the same root, the same strata byte for
byte and the same errors. ``map_memory.NATIVE`` chooses (``PLANT_AUDIT_PURE=1`` forces the
twin).
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.integrity import map_memory, sparse_merkle
from shared.storage import map_strata

Rewritten = list[tuple[bytes, bytes]]  # (prefix, stored bytes), in prefix order


class _Read:
    """The strata read, as the ``NodeStore`` the twin's update asks (they hold the paths)."""

    def __init__(self, strata: map_strata.Strata) -> None:
        self.strata = strata

    def get_paths(self, keys: object) -> map_strata.Strata:
        return self.strata


def update(
    strata: map_strata.Strata, digests: Mapping[bytes, bytes], pure: bool = False
) -> tuple[bytes, Rewritten]:
    """Set each key to its value hash in the map whose strata on the keys' paths are
    ``strata``: the new root, and each stratum rewritten as its stored records with the
    nodes written put in (a new stratum: those nodes alone). Raises ``MissingNode`` where a
    parent's half names a node that is not stored, as ``sparse_merkle.update_hashed`` does."""
    if not digests:
        return sparse_merkle.root(_Read(strata)), []
    if pure or map_memory.NATIVE is None:
        return _pure(strata, digests)
    records = b"".join(key + digests[key] for key in sorted(digests))
    try:
        root, rewritten = map_memory.NATIVE.update_strata(strata.rows, records)
    except LookupError as exc:  # (depth, a key below it): the address as the twin names it
        depth, key = exc.args
        index = int.from_bytes(key, "big") >> (sparse_merkle.DEPTH - depth)
        raise sparse_merkle.MissingNode(f"node {(depth, index)} is not stored") from None
    rewritten.sort()
    return root, rewritten


def _pure(strata: map_strata.Strata, digests: Mapping[bytes, bytes]) -> tuple[bytes, Rewritten]:
    change = sparse_merkle.update_hashed(_Read(strata), digests)
    rows = strata.rows
    return change.root, [
        (prefix, strata.merged(prefix, nodes) if prefix in rows else map_strata.encode(nodes))
        for prefix, nodes in sorted(map_strata.group(change.written).items())
    ]
