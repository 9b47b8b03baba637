"""Batch create, checked as sets (issue 27): every item's key checked in one statement before
any of the batch's heads exist, every refused item named, and nothing written."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from shared.errors import Conflict, ValidationFailed
from shared.registry import batches, reads, writes
from shared.security.principal import Principal
from shared.storage import ledger
from tests.support import tags as tag_rows


def _author(tenant: str) -> Principal:
    return Principal("alice", tenant, frozenset({"author", "reader"}))


def _skill(name: str, **extra) -> dict:
    return {"name": name, "description": "d", "category": "technical", **extra}


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(ledger, "CHUNK", 4)


def _written(superuser, tenant: str) -> tuple[int, int, int, int | None]:
    """Entries, heads and tags the tenant holds, and its log counter."""
    with superuser.connect() as conn:
        return tuple(
            conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM log_entries WHERE tenant_id = :t), "
                    "(SELECT count(*) FROM entity_heads WHERE tenant_id = :t), "
                    "(SELECT count(*) FROM entity_tags WHERE tenant_id = :t), "
                    "(SELECT size FROM log_heads WHERE tenant_id = :t)"
                ),
                {"t": tenant},
            ).one()
        )


def test_every_item_whose_key_a_live_entity_holds_is_named_in_one_409(
    database_url, tenant, superuser, small_chunks
):
    author = _author(tenant)
    rust = writes.create(author, "skills", _skill("Rust", tags=["x"]), "r").body["identity"]
    go = writes.create(author, "skills", _skill("Go"), "r").body["identity"]
    java = writes.create(author, "skills", _skill("Java"), "r").body["identity"]
    before = _written(superuser, tenant)
    bodies = [_skill(f"new {i}", tags=["t"]) for i in range(12)]
    bodies[1] = _skill("RUST")  # reads as the live "Rust" (case)
    bodies[6] = _skill("\uff27o")  # fullwidth G: reads as the live "Go", in the second chunk
    bodies[11] = _skill("java")  # the last chunk
    with pytest.raises(Conflict) as caught:
        batches.create_batch(author, "skills", bodies, "r")
    named = [(v["field"], v["message"]) for v in caught.value.extensions["violations"]]
    assert [field for field, _ in named] == ["items[1].name", "items[6].name", "items[11].name"]
    holders = [rust["id"], go["id"], java["id"]]
    assert all(h in m for h, (_, m) in zip(holders, named, strict=True))
    assert caught.value.extensions["existing_id"] == rust["id"]
    assert _written(superuser, tenant) == before  # nothing, not even the counter's move


def test_a_deprecated_holder_takes_no_key_from_a_batch(database_url, tenant, superuser):
    author = _author(tenant)
    old = writes.create(author, "skills", _skill("Legacy"), "r")
    writes.change_status(
        author,
        "skills",
        old.body["identity"]["id"],
        {"status": "deprecated", "reason": "old"},
        f'"v{old.version}"',
        "r",
    )
    made = batches.create_batch(author, "skills", [_skill("legacy")], "r")["items"]
    assert len(made) == 1


def test_the_server_refuses_two_items_of_a_batch_reading_alike(
    database_url, tenant, superuser, small_chunks, monkeypatch
):
    """The caller refuses them first (a 422); the server does not take its word for it: with
    the caller's check blinded, the later items are refused by the database, each named with
    the earlier item as its holder, and nothing is written."""
    author = _author(tenant)
    writes.create(author, "skills", _skill("Before"), "r")
    before = _written(superuser, tenant)
    monkeypatch.setattr(batches.names, "readings", lambda key: ())
    bodies = [_skill(n) for n in ("Rust", "a", "b", "c", "d", "RUST", "e", "\uff32ust")]
    with pytest.raises(Conflict) as caught:
        batches.create_batch(author, "skills", bodies, "r")
    named = [(v["field"], v["message"]) for v in caught.value.extensions["violations"]]
    assert [field for field, _ in named] == ["items[5].name", "items[7].name"]
    assert all(message.endswith("('Rust')") for _, message in named)
    assert _written(superuser, tenant) == before


def test_another_tenants_reference_and_a_taken_key_together_are_one_422(
    database_url, tenant, superuser, certify
):
    """A 422 naming every bad item wins over a 409: the batch holds a taken key (item 0) and a
    skill of another tenant (item 2); the answer is the 422, and nothing is written."""
    author = _author(tenant)
    other = _author(f"t-{uuid.uuid4().hex[:12]}")
    theirs = writes.create(other, "skills", _skill("Theirs"), "r").body["identity"]["id"]
    ours = writes.create(author, "skills", _skill("Role skill"), "r").body["identity"]["id"]
    certify("skills", ours)
    role = {"description": "d", "seniority_level": "mid", "required_skills": [ours]}
    writes.create(author, "job-roles", {"name": "Taken role", **role}, "r")
    before = _written(superuser, tenant)
    bodies = [
        {"name": "Taken role", **role},
        {"name": "Fine role", **role},
        {**role, "name": "Foreign role", "required_skills": [theirs]},
        {**role, "name": "Ghost role", "required_skills": [str(uuid.uuid4())]},
    ]
    with pytest.raises(ValidationFailed) as caught:
        batches.create_batch(author, "job-roles", bodies, "r")
    fields = [v["field"] for v in caught.value.extensions["violations"]]
    assert fields == ["items[2].required_skills[0]", "items[3].required_skills[0]"]
    assert _written(superuser, tenant) == before


def test_a_batch_writes_the_tags_its_bodies_hold(database_url, tenant, superuser, small_chunks):
    """The batch writes its heads' tags from the items; they are exactly the tags the
    database reads from each logged body (``plant_body_tags``), as a single create's are."""
    author = _author(tenant)
    bodies = [
        _skill("one", tags=["a", "b"]),
        _skill("two", tags=["b", "b", "\u00e9t\u00e9"]),  # a repeated tag is one row
        _skill("three"),  # no tags
        _skill("four", tags=[]),
        _skill("five", tags=["z"]),
    ]
    made = batches.create_batch(author, "skills", bodies, "r")["items"]
    single = writes.create(author, "skills", _skill("six", tags=["a"]), "r")
    stored = tag_rows.stored(superuser, tenant)
    assert stored == tag_rows.derived(superuser, tenant)
    by_id = {m["id"]: i for i, m in enumerate(made)}
    by_id[single.body["identity"]["id"]] = 5
    named = sorted((by_id[r[0]], r[1]) for r in stored)
    assert named == [(0, "a"), (0, "b"), (1, "b"), (1, "\u00e9t\u00e9"), (4, "z"), (5, "a")]


def test_a_batchs_tags_read_back_through_get_listing_and_search(database_url, tenant, small_chunks):
    """The tags a batch writes before any document is encoded are the ones every read shows:
    the document, the listing and the search by tag (its count included), across chunks."""
    author = _author(tenant)
    tags = [["a", "b"], ["b", "b", "\u00e9t\u00e9"], [], ["z"], ["a"], ["b", "a"], ["c"]]
    bodies = [_skill(f"tagged {i}", tags=t) for i, t in enumerate(tags)]
    made = batches.create_batch(author, "skills", bodies, "r")["items"]
    ids = [m["id"] for m in made]
    for entity_id, written in zip(ids, tags, strict=True):
        assert reads.get(author, "skills", entity_id).body["metadata"]["tags"] == written
    listed = reads.list_entities(author, "skills", {"limit": "100"})["items"]
    assert [d["metadata"]["tags"] for d in listed] == tags
    for tag in ("a", "b", "c", "z", "\u00e9t\u00e9", "nowhere"):
        found = reads.list_entities(author, "skills", {"tag": tag, "limit": "100"})
        expected = [i for i, t in zip(ids, tags, strict=True) if tag in t]
        assert [d["identity"]["id"] for d in found["items"]] == expected, tag
        assert found["total"] == len(expected)


def test_a_batchs_tags_and_keys_stay_in_its_tenant(database_url, tenant, small_chunks):
    """Another tenant reading the batch's tags, directly under row-level security or through
    a search, finds none of them; and the batch's keys refuse nothing of that tenant's own
    batch of the same names."""
    from shared.storage.engine import database

    author = _author(tenant)
    other = _author(f"t-{uuid.uuid4().hex[:12]}")
    bodies = [_skill(f"shared name {i}", tags=["mine"]) for i in range(6)]
    batches.create_batch(author, "skills", bodies, "r")
    with database().transaction(other.tenant) as conn:
        crossing = conn.execute(
            text("SELECT count(*) FROM entity_tags WHERE tenant_id = :t OR tag = 'mine'"),
            {"t": tenant},
        ).scalar_one()
    assert crossing == 0
    assert reads.list_entities(other, "skills", {"tag": "mine"})["total"] == 0
    theirs = batches.create_batch(other, "skills", bodies, "r")["items"]
    assert len(theirs) == 6
    assert reads.list_entities(author, "skills", {"tag": "mine"})["total"] == 6
    assert reads.list_entities(other, "skills", {"tag": "mine"})["total"] == 6
