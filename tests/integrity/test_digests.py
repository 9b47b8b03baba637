"""The one-pass document encoder must give exactly the bytes and digests of the plain
definitions: canonical.dumps of the whole document and field_digests section by section."""

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
    body, field_digests = digests.encode_document(doc)
    assert body == canonical.dumps(doc)
    assert field_digests == digests.field_digests(doc)


def test_join_object_orders_names_by_utf16_code_units():
    members = {"\ue000": b"1", "\U0001f600": b"2", "a": b"3"}
    assert canonical.join_object(members) == canonical.dumps({"\ue000": 1, "\U0001f600": 2, "a": 3})
    assert canonical.join_object(members).startswith(b'{"a":3,"\xf0\x9f\x98\x80":2')
