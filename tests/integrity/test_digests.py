"""The one-pass document encoder must give exactly the bytes and digests of the plain
definitions: canonical.dumps of the whole document and field_digests section by section, and
its packed digests must read back into names."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.integrity import canonical, digests

# Keys from the whole range, so name order by UTF-16 code units (where U+E000..U+FFFF sorts
# after supplementary characters, unlike code point order) is exercised.
KEYS = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from("\ue000\U0001f600"),
    max_size=4,
)
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8", exclude_categories=("Cs",))),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)
DOCUMENTS = st.dictionaries(KEYS, st.dictionaries(KEYS, VALUES, max_size=5) | VALUES, max_size=7)


@settings(max_examples=300, deadline=None)
@given(DOCUMENTS)
def test_one_pass_encoding_equals_the_definitions(doc):
    body, packed = digests.encode_document(doc)
    assert body == canonical.dumps(doc)
    assert digests.unpack(packed) == digests.field_digests(doc, digests.LOCATOR_SIZE)
    assert digests.stored_field_digests(None, packed) == (
        digests.field_digests(doc, digests.LOCATOR_SIZE),
        digests.LOCATOR_SIZE,
    )


def test_sections_are_written_in_utf16_name_order():
    body, _ = digests.encode_document({"\ue000": 1, "\U0001f600": 2, "a": 3})
    assert body == canonical.dumps({"\ue000": 1, "\U0001f600": 2, "a": 3})
    assert body.startswith(b'{"a":3,"\xf0\x9f\x98\x80":2')


def test_packed_layout_is_the_documented_bytes():
    doc = {"s": {"b": "x", "a": None}, "t": [1]}
    _, packed = digests.encode_document(doc)
    layout = canonical.dumps([["s", ["a", "b"]], ["t", []]])
    cut = digests.LOCATOR_SIZE
    assert packed == (
        b"\x01"
        + digests.sha256(layout)[:8]
        + digests.sha256(b'{"a":null,"b":"x"}')[:cut]
        + digests.sha256(b"null")[:cut]
        + digests.sha256(b'"x"')[:cut]
        + digests.sha256(b"[1]")[:cut]
    )


def test_repeated_values_give_the_same_digests_as_new_ones():
    doc = {"s": {"a": "same", "b": "same"}, "t": {"a": "same"}}
    first = digests.encode_document(doc)
    assert digests.encode_document(doc) == first
    assert digests.unpack(first[1]) == digests.field_digests(doc, digests.LOCATOR_SIZE)


def test_packed_digests_that_are_not_the_format_are_refused():
    _, packed = digests.encode_document({"s": {"a": 1}})
    for bad in (b"", b"\x02" + packed[1:], packed[:-1], packed[:1] + b"\x00" * 8 + packed[9:]):
        try:
            digests.unpack(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad!r}")


def test_stored_json_digests_are_read_as_full_length():
    kept = {"s": {"digest": "ab" * 32, "fields": {}}}
    assert digests.stored_field_digests(kept, None) == (kept, 32)
