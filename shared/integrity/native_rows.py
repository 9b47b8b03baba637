"""The audit's per-row loops compiled (issue 27, decision 3): the extension's functions beside
the heads map (``native/plant_audit_rows.c``), each behind a function here whose pure-Python
twin is the code it replaces, called instead where ``map_memory.NATIVE`` is None (the
extension absent, ``PLANT_AUDIT_PURE=1``, or a test turning it off) or where the input is not
of the plain shape the C handles (the twin then answers, so an odd input cannot diverge).

- ``mth``: the Merkle tree hash of a batch receipt's leaves (``merkle.root_from_leaves``).
- ``skill_key``: a skill name's uniqueness key, in ``shared.audit.name_keys`` (it needs the
  rules' ``names``, a layer above this package).
- ``entry_hashes``: the entries pass's hashes of a batch of rows (each body's leaf and
  digest, compared with the row's columns and the stored level-0 hashes).
- ``version_rows``: the entries pass's plain versions taken in (``native/version_rows.c``);
  its twin is the pass's own row loop (``shared.audit.entry_rows``), which takes every row
  the extension does not.
- The binary COPY rows (``copyread.BinaryCopyReader.messages``) call the extension there.

Every hash is SHA-256 computed in this process (the extension's own code, or hashlib).
tests/audit/test_native_rows.py holds each to its twin; tests/audit/test_compiled_twin.py the
audit's findings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from shared.integrity import map_memory, merkle


def mth(leaves: Sequence[bytes]) -> bytes:
    """MTH(leaves), RFC 9162: compiled when every leaf is a 32-byte hash."""
    native = map_memory.NATIVE
    if native is None or set(map(len, leaves)) != {32}:
        return merkle.root_from_leaves(list(leaves))
    root: bytes = native.mth(b"".join(leaves))
    return root


# An entry's flags (``entry_hashes``), one byte a row
SAME_AS_STORED = 1  # its leaf is the stored level-0 hash at its index
LEAF_DIFFERS = 2  # its leaf_hash column is not its leaf
DIGEST_DIFFERS = 4  # its digest column is not SHA-256 of its body


def entry_hashes(
    rows: list[tuple[Any, ...]], low: int, stored: bytes | None
) -> tuple[bytes, bytes]:
    """Per row of the entries pass (idx, version, digest, leaf_hash, entity id, entry type,
    kind, prev_digest, body): its leaf, SHA-256(0x00 || body), joined, and its flags;
    ``stored`` the stored level-0 hashes joined from index ``low``. Without
    ``SAME_AS_STORED`` the caller compares the leaf with the stored hash itself (none
    joined, an index before ``low``, or another hash)."""
    native = map_memory.NATIVE
    if native is not None:
        done: tuple[bytes, bytes] | None = native.entry_hashes(rows, low, stored)
        if done is not None:
            return done
    zero, sha256 = hashlib.sha256(b"\x00"), hashlib.sha256
    leaves, flags = [], bytearray()
    for idx, _, digest, leaf_column, *_, body in rows:
        hashed = zero.copy()
        hashed.update(body)
        leaf = hashed.digest()
        leaves.append(leaf)
        offset = 32 * (idx - low)
        flag = (
            SAME_AS_STORED if stored and idx >= low and stored[offset : offset + 32] == leaf else 0
        )
        if leaf_column != leaf:
            flag |= LEAF_DIFFERS
        if digest != sha256(body).digest():
            flag |= DIGEST_DIFFERS
        flags.append(flag)
    return b"".join(leaves), bytes(flags)


def version_rows(
    rows: list[tuple[Any, ...]], flags: bytes, at: int, expected: int, state: Any,
    names: dict[str, str], kinds: dict[str, str], summary: type, feed: dict[str, Any] | None,
) -> tuple[int, int]:  # fmt: skip
    """The entries pass's rows from ``at`` taken in by the extension while each is a plain
    version whose checks find nothing (``native/version_rows.c`` says which): its summary
    into ``state.latest`` and its map tuple into ``feed``, exactly as the pass's Python loop
    would; returns where it stopped and the index expected there. Pure (no extension): none
    taken, ``(at, expected)``, and that loop takes every row."""
    native = map_memory.NATIVE
    if native is None:
        return at, expected
    taken: tuple[int, int] = native.version_rows(
        rows, flags, at, expected, state.reported, state.latest, state.irregular, state.tenant,
        names, kinds, summary, feed,
    )  # fmt: skip
    return taken


def receipt_rows(
    rows: list[tuple[Any, ...]],
    start: int,
    vouched: bytearray,
    have: bytearray,
    seen: bytearray,
    reported: set[int],
) -> list[int]:
    """The receipts pass's rows (idx, leaf_hash, ...) each marked in ``seen`` (a byte an
    index from ``start``), and the positions, in order, of those whose leaf is not the one
    a valid receipt vouches for (``vouched``, 32 bytes an index, where ``have``) and whose
    index is not yet ``reported``: the rows Python names."""
    native = map_memory.NATIVE
    if native is not None:
        done: list[int] | None = native.receipt_rows(rows, start, vouched, have, seen, reported)
        if done is not None:
            return done
    named = []
    for at, (index, leaf, *_) in enumerate(rows):
        offset = index - start
        seen[offset] = 1
        if have[offset] and vouched[32 * offset : 32 * offset + 32] == leaf:
            continue  # vouched: nothing to say
        if index not in reported:
            named.append(at)
    return named
