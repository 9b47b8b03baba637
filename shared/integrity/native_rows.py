"""The audit's per-row loops compiled (issue 27, decision 3): the extension's functions beside
the heads map (``native/plant_audit_rows.c``), each behind a function here whose pure-Python
twin is the code it replaces, called instead where ``map_memory.NATIVE`` is None (the
extension absent, ``PLANT_AUDIT_PURE=1``, or a test turning it off) or where the input is not
of the plain shape the C handles (the twin then answers, so an odd input cannot diverge).

- ``mth``: the Merkle tree hash of a batch receipt's leaves (``merkle.root_from_leaves``).
- ``skill_key``: a skill name's uniqueness key (``names.unique_key``) for an ASCII name,
  from each ASCII character's two readings as ``names`` itself computes them; the tables
  keep only characters whose readings join as the whole name's would (no combining mark,
  no ignorable, already NFD), so the key is the one ``names`` derives.
- ``entry_hashes``: the entries pass's hashes of a batch of rows (each body's leaf and
  digest, compared with the row's columns and the stored level-0 hashes).
- The binary COPY rows (``copyread.BinaryCopyReader.messages``) call the extension there.

Every hash is SHA-256 computed in this process (the extension's own code, or hashlib).
tests/audit/test_native_rows.py holds each to its twin; tests/audit/test_compiled_twin.py the
audit's findings.
"""

from __future__ import annotations

import functools
import hashlib
import unicodedata
from collections.abc import Sequence
from typing import Any

from shared.integrity import map_memory, merkle
from shared.rules import names


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


def skill_key(name: str) -> str:
    """``names.unique_key(name)``: compiled for a name of ASCII characters whose readings
    the tables hold (and whose readings fit ``names.MAX_READING``)."""
    native = map_memory.NATIVE
    if native is not None:
        key: str | None = native.skill_key(name, *_tables())
        if key is not None:
            return key
    return names.unique_key(name)


def _plain(reading: str) -> bool:
    """A character's reading that joins with its neighbours' as the whole name's reading
    would: NFD already, no combining mark (NFD's reordering stops at none), no ignorable
    (removed after the join)."""
    return (
        unicodedata.normalize("NFD", reading) == reading
        and not any(unicodedata.combining(c) for c in reading)
        and names.SEPARATOR not in reading
        and reading.translate(names._ignorables()) == reading
    )


@functools.cache
def _tables() -> tuple[tuple[bytes | None, ...], tuple[bytes | None, ...]]:
    """Per ASCII character, its folded reading (the character lowered, then its skeleton)
    and its shape (its skeleton case-folded), UTF-8; None where it is not ``_plain``."""
    folded, shape = [], []
    for code in range(128):
        char = chr(code)
        skeleton = names.skeleton(char)
        cased = skeleton.casefold()
        folded.append(skeleton.encode() if _plain(skeleton) else None)
        shape.append(cased.encode() if _plain(skeleton) and _plain(cased) else None)
    return tuple(folded), tuple(shape)
