"""Names compared as people read them: the uniqueness key of a skill's name.

A name is stored exactly as written; what must be unique among a tenant's live skills is how
it reads. The key holds two readings, and two live skills may share neither:

- *folded*: the name after NFKC, with every Default_Ignorable_Code_Point removed, case folded
  (``str.casefold``), its whitespace runs made one space and its ends trimmed, then its
  skeleton. "RUST", U+FF32 + "ust" (fullwidth R), U+211B + "ust" (script R), "Rust" + U+200B
  and "Ru" + U+00AD + "st" all read "rust"; "p" + U+0430 + "ypal" (Cyrillic a) reads "paypal".
- *shape*: the skeleton of the name with its case kept (NFKC, ignorables removed), then case
  folded: U+041D U+0422 U+041C + "L" (Cyrillic EN, TE, EM) reads as "HTML" does, which the
  folded reading misses (lower-case en and te look like small capitals, not Latin letters).

The skeleton is Unicode Technical Standard #39's (section 4, Confusable Detection):
skeleton(X) = NFD(X), each character replaced by its prototype in ``confusables.txt``, NFD
again. Both readings lose what it means to lose: "rn" reads "m", "l", "I", "1" and "|" read
"l", "0" reads "O", so "Part II" and "Part 11", or "Modem" and "Modern", are one name.

The tables are Unicode's own files for Unicode 14.0.0 (``shared/rules/unicode/``): the version of
Python 3.11's ``unicodedata``, so NFKC, NFD, case folding and the tables agree. Another
Python (another Unicode version) would give some names other keys: tests/registry/
test_names.py then fails until the tables are replaced and a migration re-keys the heads.
"""

from __future__ import annotations

import functools
import hashlib
import unicodedata
from pathlib import Path

UNICODE_VERSION = "14.0.0"
_DATA = Path(__file__).with_name("unicode")
# Between the two readings of a key; itself default-ignorable, so no reading contains it.
SEPARATOR = "\u2063"  # INVISIBLE SEPARATOR
MAX_READING = 1024  # UTF-8 bytes of a reading kept as it is (both fit one index entry)


def unique_key(name: str) -> str:
    """The key a skill named ``name`` holds: ``name:<folded><SEPARATOR><shape>``."""
    return f"name:{_bounded(folded(name))}{SEPARATOR}{_bounded(shape(name))}"


def readings(key: str) -> tuple[str, ...]:
    """The readings a key holds (one for a key that is not a name's): two keys collide when
    they share a reading at the same place."""
    return tuple(key.split(SEPARATOR))


def folded(name: str) -> str:
    """The skeleton of the NFKC-casefolded name without ignorables (see the module)."""
    text = _visible(unicodedata.normalize("NFKC", _visible(name)).casefold())
    return _visible(skeleton(" ".join(unicodedata.normalize("NFKC", text).split())))


def shape(name: str) -> str:
    """The case-folded skeleton of the name with its case kept (see the module)."""
    text = " ".join(_visible(unicodedata.normalize("NFKC", _visible(name))).split())
    return _visible(unicodedata.normalize("NFD", skeleton(text).casefold()))


def skeleton(text: str) -> str:
    """UTS #39 skeleton: NFD, every character mapped to its confusables.txt prototype, NFD."""
    mapped = unicodedata.normalize("NFD", text).translate(_prototypes())
    return unicodedata.normalize("NFD", mapped)


def _bounded(reading: str) -> str:
    """A reading as the database can index it: NFKC makes a character up to 18, so a long
    name could read past what one index entry holds (2,704 bytes); such a reading is kept
    as its SHA-256, which is equal exactly when the readings are."""
    if len(reading.encode()) <= MAX_READING:
        return reading
    return "sha256:" + hashlib.sha256(reading.encode()).hexdigest()


def _visible(text: str) -> str:
    # every default-ignorable code point is past ASCII (the first is U+00AD)
    return text if text.isascii() else text.translate(_ignorables())


@functools.cache
def _prototypes() -> dict[int, str]:
    """confusables.txt: ``source ; prototype ; MA # comment``, code points in hex; as a
    ``str.translate`` table (a batch computes 20,000 skeletons: one pass in C each)."""
    table = {}
    for line in _lines("confusables.txt"):
        source, target, _ = line.split(";", 2)
        table[int(source, 16)] = "".join(chr(int(cp, 16)) for cp in target.split())
    return table


@functools.cache
def _ignorables() -> dict[int, None]:
    """Default_Ignorable_Code_Point: ``first[..last] ; Default_Ignorable_Code_Point # ...``,
    as a ``str.translate`` table that deletes them."""
    points: dict[int, None] = {}
    for line in _lines("DefaultIgnorable.txt"):
        span, prop = (part.strip() for part in line.split(";", 1))
        if prop != "Default_Ignorable_Code_Point":
            raise ValueError(f"DefaultIgnorable.txt: unexpected property {prop!r}")
        first, _, last = span.partition("..")
        points.update(dict.fromkeys(range(int(first, 16), int(last or first, 16) + 1)))
    return points


def _lines(filename: str) -> list[str]:
    """The data lines of one of Unicode's files: comments and blank lines left out; its
    ``Version`` header must be the Unicode version ``unicodedata`` implements."""
    lines = (_DATA / filename).read_text(encoding="utf-8-sig").splitlines()
    if not any(UNICODE_VERSION in line for line in lines[:10]):
        raise ValueError(f"{filename} is not Unicode {UNICODE_VERSION}'s")
    data = (line.split("#", 1)[0] for line in lines)
    return [line for line in data if line.strip()]
