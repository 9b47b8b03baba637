"""A skill name's uniqueness key in the audit, compiled for plain names (issue 27, decision
3): ``plant_map_native.skill_key`` (native/plant_audit_rows.c) from each ASCII character's
two readings as ``shared.rules.names`` itself computes them. The tables keep only characters
whose readings join as the whole name's would (no combining mark, no ignorable, already NFD),
so the key is the one ``names.unique_key`` derives; any other name, or the extension absent
(``map_memory.NATIVE`` None), is keyed by ``names.unique_key``, its twin.
tests/audit/test_native_rows.py holds the two equal."""

from __future__ import annotations

import functools
import unicodedata

from shared.integrity import map_memory
from shared.rules import names


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
