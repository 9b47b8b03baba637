"""RFC 8785 (JCS): the RFC's own examples, its number table, the orjson fast path held to
Trail of Bits' ``rfc8785`` library, and the strict input parser."""

from __future__ import annotations

import json
import struct

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.integrity import canonical

# RFC 8785 Appendix B: IEEE 754 bit patterns and their ECMAScript serialisation.
NUMBERS = {
    "0000000000000000": "0",
    "8000000000000000": "0",
    "0000000000000001": "5e-324",
    "8000000000000001": "-5e-324",
    "7fefffffffffffff": "1.7976931348623157e+308",
    "ffefffffffffffff": "-1.7976931348623157e+308",
    "4340000000000000": "9007199254740992",
    "c340000000000000": "-9007199254740992",
    "4430000000000000": "295147905179352830000",
    "44b52d02c7e14af5": "9.999999999999997e+22",
    "44b52d02c7e14af6": "1e+23",
    "44b52d02c7e14af7": "1.0000000000000001e+23",
    "444b1ae4d6e2ef4e": "999999999999999700000",
    "444b1ae4d6e2ef4f": "999999999999999900000",
    "444b1ae4d6e2ef50": "1e+21",
    "3eb0c6f7a0b5ed8c": "9.999999999999997e-7",
    "3eb0c6f7a0b5ed8d": "0.000001",
    "41b3de4355555553": "333333333.3333332",
    "41b3de4355555554": "333333333.33333325",
    "41b3de4355555555": "333333333.3333333",
    "41b3de4355555556": "333333333.3333334",
    "41b3de4355555557": "333333333.33333343",
    "becbf647612f3696": "-0.0000033333333333333333",
    "43143ff3c1cb0959": "1424953923781206.2",
}


@pytest.mark.parametrize(("bits", "expected"), NUMBERS.items())
def test_number_serialisation_matches_the_rfc_table(bits, expected):
    value = struct.unpack(">d", bytes.fromhex(bits))[0]
    assert canonical.dumps(value) == expected.encode()


def test_section_3_2_2_example():
    source = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical.dumps(json.loads(source)) == expected.encode()


def test_section_3_2_3_key_order_is_by_utf16_code_units():
    source = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys = list(json.loads(canonical.dumps(source)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_unicode_is_written_as_utf8_and_controls_escaped():
    assert canonical.dumps({"a": "é\u2028\x1f\x7f"}) == '{"a":"é\u2028\\u001f\x7f"}'.encode()


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',
        "[NaN]",
        "[Infinity]",
        "[-Infinity]",
        '"\\ud800"',
        "[9007199254740992]",
        "[-9007199254740992]",
        "{bad json",
    ],
)
def test_strict_parser_refuses_what_jcs_cannot_represent(text):
    with pytest.raises(canonical.CanonicalError):
        canonical.loads(text)


@pytest.mark.parametrize(
    "text", ["[" * 100_000, "[" * 33 + "]" * 33, '{"a":' * 40 + "1" + "}" * 40]
)
def test_deep_nesting_is_refused_not_a_crash(text):
    with pytest.raises(canonical.CanonicalError, match="nested deeper than 32"):
        canonical.loads(text)


def test_serialiser_refuses_unrepresentable_values():
    for value in (float("nan"), float("inf"), 2**53, {1: "x"}, {"a": object()}, "\ud800"):
        with pytest.raises(canonical.CanonicalError):
            canonical.dumps(value)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(-(2.0**53) + 1, 2.0**53 - 1)  # beyond that, I-JSON is inexact
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_round_trip_and_idempotence(value):
    try:
        first = canonical.dumps(value)
    except canonical.CanonicalError:
        return  # lone surrogates in generated text
    again = canonical.dumps(canonical.loads(first))
    assert again == first
    assert json.loads(first) == json.loads(again)


# What the orjson fast path accepts: no floats; strings from the whole of Unicode but lone
# surrogates (controls, the BMP's top, the astral planes), member names from the BMP (UTF-16
# sorts astral ones differently: ``is_plain`` sends those to the library); ints within 2**53.
_TEXT = st.text(st.characters(exclude_categories=["Cs"]))
_BMP_NAME = st.text(st.characters(exclude_categories=["Cs"], max_codepoint=0xFFFF), max_size=4)
_PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_BMP_NAME, inner, max_size=4),
    max_leaves=20,
)
_ANY = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(_PLAIN)
def test_the_orjson_fast_path_writes_exactly_the_librarys_bytes(value):
    assert canonical.is_plain(value)
    assert canonical.dumps_plain(value) == rfc8785.dumps(value)


@settings(max_examples=400, deadline=None)
@given(_ANY)
def test_the_writer_writes_exactly_the_librarys_bytes_floats_included(value):
    assert canonical.dumps(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value",
    [
        {"\ue000": 1, "\U0001f600": 2},  # UTF-16 order differs from code point order
        {"a": [1.0, 1e21, -0.0, 5e-324]},  # ECMAScript numbers, not orjson's
        {"a": True, "b": [None, False, 9007199254740991, -9007199254740991]},
        '\u2028\u2029\x7f\x1f/\\"',
    ],
)
def test_values_orjson_would_write_differently_take_the_library(value):
    assert canonical.dumps(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value",
    [2**53, -(2**53), "\ud800", {"k": "\udfff"}, {"\ud800": 1}, {1: "x"}, 1.5j, b"x", {"k": {1}}],
)
def test_what_has_no_canonical_form_is_refused_on_both_paths_as_ours(value):
    """The library's own errors (and the UnicodeEncodeError it lets out for a lone surrogate
    in a member name) reach callers as CanonicalError, which the routes turn into a 4xx."""
    with pytest.raises(canonical.CanonicalError):
        canonical.dumps(value)
    with pytest.raises(canonical.CanonicalError):
        canonical.dumps_general(value)


def test_lone_surrogate_member_name_is_ours_in_a_document():
    with pytest.raises(canonical.CanonicalError):
        canonical.member_name("\udfff")


def _reference_loads(text: str) -> object:
    """The strict parser, written the plain way: one member, one string, one level at a
    time (what ``loads`` must accept and refuse exactly)."""

    def pairs(items):
        out = {}
        for key, val in items:
            if key in out:
                raise canonical.CanonicalError("duplicate")
            out[key] = val
        return out

    def walk(item, depth):
        if depth > canonical.MAX_DEPTH:
            raise canonical.DepthExceeded("deep")
        if isinstance(item, str):
            item.encode("utf-8")
        elif isinstance(item, float) and not (item == item and abs(item) != float("inf")):
            raise canonical.CanonicalError("number")
        elif isinstance(item, dict):
            for key, val in item.items():
                key.encode("utf-8")
                walk(val, depth + 1)
        elif isinstance(item, list):
            for val in item:
                walk(val, depth + 1)

    def safe(digits):
        if abs(int(digits)) > canonical.MAX_SAFE_INTEGER:
            raise canonical.CanonicalError("int")
        return int(digits)

    def constant(name):
        raise canonical.CanonicalError(name)

    value = json.loads(text, object_pairs_hook=pairs, parse_int=safe, parse_constant=constant)
    walk(value, 1)
    return value


_EDGES = [
    '{"a": 1, "a": 2}',
    '{"a": {"b": 1, "b": 1}}',
    "[NaN]",
    "[-Infinity]",
    '"\\udfff"',
    '{"\\ud800": 1}',
    "[9007199254740992]",
    "[-9007199254740991]",
    "[1e400]",
    "1e999",
]
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)
_texts = st.one_of(
    _json_values.map(json.dumps),
    st.builds(
        lambda depth, leaf: "[" * depth + leaf + "]" * depth,
        st.integers(28, 36),
        st.sampled_from(["", "1", "{}", '{"a": 1}', '"\\ud800"', "1e999"]),
    ),
    st.sampled_from(_EDGES),
)


@settings(max_examples=400, deadline=None)
@given(_texts)
def test_loads_accepts_and_refuses_exactly_what_the_plain_parser_does(text):
    try:
        expected = _reference_loads(text)
    except (canonical.CanonicalError, UnicodeEncodeError, RecursionError) as exc:
        with pytest.raises(canonical.DepthExceeded if isinstance(exc, canonical.DepthExceeded)
                           else canonical.CanonicalError):  # fmt: skip
            canonical.loads(text)
    else:
        assert canonical.loads(text) == expected
