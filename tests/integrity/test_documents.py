"""``documents.encode`` serialises a built document by the C encoder alone when the client's
free-form ``custom_attributes`` are plain: whatever a client sends, the stored bytes must be
exactly the RFC's, and the packed digests exactly the documented ones."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.integrity import canonical, digests, merkle
from shared.registry import documents
from shared.registry.documents import Change
from shared.rules import inputs
from shared.rules.kinds import KINDS

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\0"))
NAMES = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from("\ue000\U0001f600"),
    max_size=4,
)
ATTRIBUTES = st.dictionaries(
    NAMES,
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**53) + 1, 2**53 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | TEXT,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=3),
        max_leaves=8,
    ),
    max_size=5,
)
SKILLS = st.fixed_dictionaries(
    {
        "name": TEXT.filter(lambda t: t.strip()).map(lambda t: t[:200]),
        "description": TEXT.filter(lambda t: t.strip()).map(lambda t: t[:500]),
        "category": st.sampled_from(["technical", "soft_skill"]),
        "tags": st.lists(TEXT.filter(lambda t: t.strip()).map(lambda t: t[:64]), max_size=4),
        "custom_attributes": ATTRIBUTES,
    }
)
CHANGE = Change("acme", "", 2, "draft", "t0", "t1", "sha256:00", "why", "alice", "r", "amend", [])


@settings(max_examples=300, deadline=None)
@given(SKILLS, st.uuids())
def test_stored_bytes_and_digests_are_exactly_the_rfcs_whatever_the_client_sends(body, ident):
    kind = KINDS["skills"]
    fields, _, problems = inputs.check_write(kind, body, current=None)
    if problems:  # e.g. custom attributes past their limits: never encoded
        return
    doc = documents.build(kind, fields, CHANGE, str(ident))
    encoded = documents.encode(doc)
    assert encoded.body == canonical.dumps_general(doc)
    assert encoded.digest == digests.sha256(encoded.body)
    assert encoded.leaf_hash == merkle.leaf_hash(encoded.body)
    assert digests.unpack(encoded.field_hashes) == digests.field_digests(doc, digests.LOCATOR_SIZE)


def test_every_layout_the_registry_writes_is_known_at_import():
    import subprocess
    import sys

    fresh = subprocess.run(
        [
            sys.executable,
            "-c",
            "import shared.registry.documents\nfrom shared.integrity import digests\n"
            "print(' '.join(sorted(i.hex() for i in digests._layouts)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    written = []
    for kind in KINDS.values():
        fields, _, _ = inputs.check_write(kind, {}, current=None)
        written.append(documents.encode(documents.build(kind, fields, CHANGE, "x")))
    envelope = {"payload": "e30=", "payloadType": "t", "signatures": [{"keyid": "k", "sig": "s"}]}
    written.append(documents.encode(envelope))
    assert {e.field_hashes[1:9].hex() for e in written} <= set(fresh)
