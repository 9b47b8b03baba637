"""The readings of a name (``shared/rules/names.py``): Unicode's tables, UTS #39's own examples, and
what the rule makes one name or leaves as two (HTTP tests: tests/web/
test_look_alike_names.py)."""

from __future__ import annotations

import unicodedata

import pytest

from shared.rules import names


def _one_name(a: str, b: str) -> bool:
    ka, kb = names.readings(names.unique_key(a)), names.readings(names.unique_key(b))
    return any(x == y for x, y in zip(ka, kb, strict=True))


def test_the_tables_are_for_the_unicode_version_python_implements():
    """NFKC, NFD and case folding come from ``unicodedata``; the tables must be the same
    version's, or a key would mix two versions (a new Python needs new tables and a
    migration that re-keys the heads)."""
    assert unicodedata.unidata_version == names.UNICODE_VERSION


def test_default_ignorables_are_unicodes_whole_property():
    ignorable = names._ignorables()
    text = (names._DATA / "DefaultIgnorable.txt").read_text(encoding="utf-8")
    total = int(text.split("# Total code points: ")[1].split()[0])
    assert len(ignorable) == total == 4174
    for char in "\u00ad\u034f\u061c\u115f\u180e\u200b\u200d\u2060\u2064\u3164\ufe0f\ufeff":
        assert ord(char) in ignorable, f"U+{ord(char):04X}"
    # The property's own derivation, checked against Python's categories: every format
    # character (Cf) is ignorable but the prepended concatenation marks and the
    # interlinear annotation and Egyptian format controls the property leaves out.
    left_out = {*range(0x600, 0x606), 0x6DD, 0x70F, 0x890, 0x891, 0x8E2, 0x110BD, 0x110CD}
    left_out |= {*range(0xFFF9, 0xFFFC), *range(0x13430, 0x13439)}
    formats = {cp for cp in range(0x110000) if unicodedata.category(chr(cp)) == "Cf"}
    assert formats - left_out <= ignorable.keys()
    assert not any(chr(cp).isspace() for cp in ignorable)


def test_skeletons_match_the_examples_of_uts_39():
    assert names.skeleton("p\u0430ypal") == names.skeleton("paypal")  # Cyrillic a
    assert names.skeleton("\u0455\u0441\u043e\u0440\u0435") == names.skeleton("scope")
    assert names.skeleton("\u211b") == names.skeleton("R")  # SCRIPT CAPITAL R
    assert names.skeleton("rn") == names.skeleton("m")
    assert names.skeleton("I") == names.skeleton("l") == names.skeleton("1")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Rust", "\u211bust"),  # SCRIPT CAPITAL R: NFKC
        ("Rust", "\uff32ust"),  # FULLWIDTH R: NFKC
        ("Rust", "Ru\u00adst"),  # SOFT HYPHEN: ignorable
        ("HTML", "\u041d\u0422\u041cL"),  # Cyrillic capitals: the shape reading
        ("IBM", "lBM"),  # the shape reading
        ("Ibm", "ibm"),  # case: the folded reading
        ("Caf\u00e9", "Cafe\u0301"),  # composed and decomposed
        ("Team-work", "Team\u2010work"),  # HYPHEN is HYPHEN-MINUS's look-alike
        ("Machine  learning", " machine\u00a0learning"),  # spaces as a reader sees them
        # What UTS #39 reads alike, so one name here too:
        ("Part II", "Part 11"),
        ("Modern", "Modem"),  # "rn" reads "m"
        ("AI", "Al"),
        ("Go", "G0"),  # "0" reads "O", a capital of "o"
    ],
)
def test_these_read_as_one_name(a, b):
    assert _one_name(a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("C", "C#"),
        ("C", "C++"),
        ("R", "K"),
        ("Python 2", "Python 3"),
        ("Java", "JavaScript"),
        ("Caf\u00e9", "Cafe"),  # a visible accent
        ("Rust", "Ru\u0301st"),
        ("Rust", "\u0420ust"),  # Cyrillic ER reads "P"
        ("Rust", "Rusty"),
        ("Go", "Ga"),
    ],
)
def test_these_stay_two_names(a, b):
    assert not _one_name(a, b)


def test_a_key_always_holds_exactly_two_readings():
    """The separator is default-ignorable, so no reading can hold it, whatever the name."""
    for name in ("Rust", "a\u2063b", "\u2063", "", "x\u2063\u2063y", "\u3164"):
        assert len(names.readings(names.unique_key(name))) == 2


def test_a_reading_past_one_index_entry_is_kept_as_its_digest():
    """U+FDFA makes 18 characters under NFKC: 200 of them read past what one index entry
    holds, so such a reading is its SHA-256; equal names still give equal keys."""
    longest = "\ufdfa" * 200
    key = names.unique_key(longest)
    assert all(len(r.encode()) <= names.MAX_READING + 16 for r in names.readings(key))
    assert names.readings(key)[1].startswith("sha256:")
    assert key == names.unique_key(longest + "\u200b") != names.unique_key("\ufdfa" * 199)


def test_ascii_text_has_no_ignorable_to_remove():
    """``_visible`` returns ASCII text as it is: Unicode 14's first default-ignorable code
    point is U+00AD. Were one in ASCII, a name holding it would read differently."""
    assert min(names._ignorables()) == 0xAD
    assert names.unique_key("Ru\u00adst") == names.unique_key("Rust")
