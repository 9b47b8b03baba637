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
- The binary COPY rows (``copyread.BinaryCopyReader.messages``) call the extension there.

Every hash is SHA-256 computed in this process (the extension's own code, or hashlib).
tests/audit/test_native_rows.py holds each to its twin; tests/audit/test_compiled_twin.py the
audit's findings.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence

from shared.integrity import map_memory, merkle
from shared.rules import names


def mth(leaves: Sequence[bytes]) -> bytes:
    """MTH(leaves), RFC 9162: compiled when every leaf is a 32-byte hash."""
    native = map_memory.NATIVE
    if native is None or set(map(len, leaves)) != {32}:
        return merkle.root_from_leaves(list(leaves))
    root: bytes = native.mth(b"".join(leaves))
    return root


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
