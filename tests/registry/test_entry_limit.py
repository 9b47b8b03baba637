"""Every stored entry fits a C2SP tile entry bundle (a uint16 length, issue 25 item 1): a body
the encoder would make longer than 65,535 bytes is refused with a 422 naming the limit,
before anything is written."""

from __future__ import annotations

import pytest

from shared.errors import LimitExceeded
from shared.integrity import tiles
from shared.registry import documents
from shared.rules.kinds import KINDS


def _doc(padding: int) -> dict:
    change = documents.Change("t", "e", 1, "draft", "", "", None, "", "a", "r", "create", [])
    doc = documents.build(KINDS["skills"], {"name": "n", "category": "technical"}, change)
    doc["metadata"]["custom_attributes"] = {"pad": "x" * padding}
    return doc


def test_the_largest_entry_that_fits_is_kept_and_one_byte_more_is_refused():
    base = len(documents.encode(_doc(0)).body)
    fits = documents.encode(_doc(tiles.MAX_ENTRY_BYTES - base))
    assert len(fits.body) == tiles.MAX_ENTRY_BYTES
    assert tiles.decode_bundle(tiles.encode_bundle([fits.body])) == [fits.body]
    with pytest.raises(LimitExceeded) as refused:
        documents.encode(_doc(tiles.MAX_ENTRY_BYTES - base + 1))
    assert refused.value.status == 422
    assert "65535" in str(refused.value) and refused.value.extensions["limit"] == 65535
