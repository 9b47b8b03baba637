"""Entity ids are UUID version 7 (shared.registry.ids): the layout bit for bit, and what the
registry hands out, one at a time and in batches."""

from __future__ import annotations

import time
import uuid

import pytest

from shared.registry import batches, ids, writes
from shared.security.principal import Principal


def _made_at(ident: str) -> int:
    """The Unix milliseconds in a version-7 id's first 48 bits."""
    return uuid.UUID(ident).int >> 80


def test_the_layout_is_rfc_9562s():
    # unix_ts_ms 0x0123456789ab; rand_a 0xcde; rand_b all ones (62 bits)
    made = ids.uuid7(0x0123456789AB, 0xCDE << 62 | (1 << 62) - 1)
    assert str(made) == "01234567-89ab-7cde-bfff-ffffffffffff"
    assert made.version == 7 and made.variant == uuid.RFC_4122
    # bits above the 74 random ones are not used
    assert ids.uuid7(1, 1 << 80 | 5) == ids.uuid7(1, 5)


def test_time_leads_so_later_ids_sort_after_earlier_ones():
    early = [ids.uuid7(1_000, r) for r in (0, (1 << 74) - 1, 12345)]
    late = [ids.uuid7(1_001, r) for r in (0, (1 << 74) - 1, 12345)]
    assert max(early) < min(late)
    assert max(str(e) for e in early) < min(str(x) for x in late)  # as text too


@pytest.mark.parametrize("unix_ms", [-1, 1 << 48])
def test_a_time_outside_48_bits_is_refused(unix_ms):
    with pytest.raises(ValueError, match="48 bits"):
        ids.uuid7(unix_ms, 0)


def test_new_ids_carry_the_time_they_were_made_and_differ():
    before = time.time_ns() // 1_000_000
    made = [ids.new_entity_id() for _ in range(2000)]
    after = time.time_ns() // 1_000_000
    assert len(set(made)) == len(made)
    assert all(m.version == 7 and before <= m.int >> 80 <= after for m in made)
    # 74 random bits: of 2,000 ids, no two share their random part
    assert len({m.int & ((1 << 76) - 1) for m in made}) == len(made)


def test_created_entities_get_ids_made_when_they_were_created(database_url, tenant):
    author = Principal("alice", tenant, frozenset({"author", "reader"}))
    before = time.time_ns() // 1_000_000
    one = writes.create(
        author, "skills", {"name": "one", "description": "d", "category": "technical"}, "r"
    )
    batch = batches.create_batch(
        author,
        "skills",
        [{"name": f"b {i}", "description": "d", "category": "technical"} for i in range(300)],
        "r",
    )
    after = time.time_ns() // 1_000_000
    made = [one.body["identity"]["id"]] + [m["id"] for m in batch["items"]]
    assert all(uuid.UUID(m).version == 7 for m in made)
    times = [_made_at(m) for m in made]
    assert all(before <= t <= after for t in times)
    assert times == sorted(times)  # made in item order, so never earlier than the one before
    assert len(set(made)) == len(made)
