"""The entries pass reads the log as a binary COPY and checks chains as it goes: an attack
is still named when it lies deep in a large range, when a column has another length than the
reader expects, and when a chain's link is broken in order or across an incremental run."""

from __future__ import annotations

import hashlib
import uuid

from sqlalchemy import text

from shared import audit
from shared.integrity import merkle
from shared.registry import writes
from shared.security.principal import Principal
from shared.storage import copyread
from tests.support import tampering
from tests.support.seeding import seed_skills
from tests.support.tampering import rewrite_body


def _found(run, kind: str) -> list[tuple]:
    return [
        (f["entity_id"], f["version"], f["log_index"]) for f in run["findings"] if f["kind"] == kind
    ]


def test_a_broken_link_is_chain_broken_in_a_full_audit(history, attack, entry_indices):
    amended = history.skills[0]
    _, second = entry_indices(history.tenant, amended)
    attack(
        "UPDATE log_entries SET prev_digest = :d WHERE tenant_id = :t AND idx = :i",
        d=hashlib.sha256(b"forged").digest(),
        t=history.tenant,
        i=second,
    )
    run = history.audit("full")
    assert _found(run, "chain_broken") == [(amended, 2, second)], run["findings"]
    assert [f["kind"] for f in run["findings"]] == ["chain_broken"]


def test_a_broken_link_to_a_version_before_the_range_is_chain_broken(history, attack):
    assert history.audit("full")["findings"] == []
    target = history.skills[2]
    writes.amend(
        history.author,
        "skills",
        target,
        {"description": "and more", "amendment_reason": "more"},
        '"v1"',
        "r",
    )
    assert history.audit("incremental")["findings"] == []  # its link reaches back: intact
    doc = writes.amend(
        history.author,
        "skills",
        target,
        {"description": "and more still", "amendment_reason": "more"},
        '"v2"',
        "r",
    )
    index = doc.body["audit_trail"]["log_index"]
    attack(
        "UPDATE log_entries SET prev_digest = NULL WHERE tenant_id = :t AND idx = :i",
        t=history.tenant,
        i=index,
    )
    run = history.audit("incremental")
    assert _found(run, "chain_broken") == [(target, 3, index)], run["findings"]


def test_a_tampered_entry_deep_in_a_large_range_is_named(superuser, tenant, database_url, attack):
    seed_skills(superuser, tenant, 0, 5000)
    rewrite_body(attack, tenant, 3210, '"seeded"', '"SEEDED"')
    run, _ = audit.run(Principal("audrey", tenant, frozenset({"auditor"})), {"mode": "full"})
    assert [(f["kind"], f["log_index"], f["field"]) for f in run["findings"]] == [
        ("altered", 3210, None)  # its field cannot be named: the locators are not signed
    ], run["findings"]
    assert run["summary"]["entries_verified"] == 5001  # and the audit's seal's map commit


def test_columns_of_another_length_are_altered_columns(history, attack, entry_indices):
    _, second = entry_indices(history.tenant, history.skills[0])
    (single,) = entry_indices(history.tenant, history.skills[2])
    attack(
        "UPDATE log_entries SET digest = substring(digest from 1 for 31) "
        "WHERE tenant_id = :t AND idx = :i",
        t=history.tenant,
        i=second,
    )
    attack(
        "UPDATE log_entries SET leaf_hash = leaf_hash || '\\x00'::bytea "
        "WHERE tenant_id = :t AND idx = :i",
        t=history.tenant,
        i=single,
    )
    run = history.audit("full")
    altered = {
        (f["log_index"], f["section"], f["field"])
        for f in run["findings"]
        if f["kind"] == "altered"
    }
    assert altered == {(second, "row", "digest"), (single, "row", "leaf_hash")}, run["findings"]


def _forge(attack, tenant: str, index: int, body: bytes) -> None:
    """Rewrite an entry's bytes with every hash beside them, the stored leaf included: only
    the signed root still disagrees."""
    tampering.forge_entry(attack, tenant, index, body)
    attack(
        "UPDATE log_nodes SET hash = :l WHERE tenant_id = :t AND level = 0 AND idx = :i",
        l=merkle.leaf_hash(body),
        t=tenant,
        i=index,
    )


def test_bytes_forged_with_their_hashes_are_named_by_what_they_contradict(
    history, attack, superuser, entry_indices
):
    (renamed,) = entry_indices(history.tenant, history.skills[2])
    _, amended = entry_indices(history.tenant, history.skills[0])
    with superuser.connect() as conn:
        bodies = dict(
            conn.execute(
                text("SELECT idx, body FROM log_entries WHERE tenant_id = :t AND idx IN (:a, :b)"),
                {"t": history.tenant, "a": renamed, "b": amended},
            ).all()
        )
    other = str(uuid.uuid4())
    _forge(
        attack,
        history.tenant,
        renamed,
        bytes(bodies[renamed]).replace(history.skills[2].encode(), other.encode()),
    )
    _forge(
        attack,
        history.tenant,
        amended,
        bytes(bodies[amended]).replace(b'"version":2', b'"version":"2"'),
    )
    run = history.audit("full")
    columns = {(f["log_index"], f["field"]) for f in run["findings"] if f["kind"] == "altered"}
    assert columns == {(renamed, "entity_id"), (amended, "body")}, run["findings"]
    assert "checkpoint_invalid" in {f["kind"] for f in run["findings"]}


def test_ranges_of_two_read_every_entry_and_head(history, attack, monkeypatch):
    monkeypatch.setattr(copyread, "RANGE", 2)  # every statement a range of two
    run = history.audit("full")
    assert run["findings"] == [] and run["summary"]["entries_verified"] == 8  # 2 map commits
    attack(
        "UPDATE entity_heads SET status = 'deprecated' WHERE tenant_id = :t",
        t=history.tenant,
    )
    run = history.audit("full")
    found = sorted(f["entity_id"] for f in run["findings"] if f.get("field") == "status")
    assert found == sorted(history.skills), run["findings"]


def test_heads_outside_the_logs_indexes_are_read_and_reported(history, attack, monkeypatch):
    """Heads are read by the log index of their first version, a range a statement; a head
    planted with a first index that is negative, past the log or NULL (its constraints
    dropped) falls in no range and must still be read and reported."""
    monkeypatch.setattr(copyread, "RANGE", 2)
    planted = [str(uuid.uuid4()) for _ in range(3)]
    attack("ALTER TABLE entity_heads DROP CONSTRAINT IF EXISTS entity_heads_first_index_check")
    attack("ALTER TABLE entity_heads ALTER COLUMN first_index DROP NOT NULL")
    for entity_id, first in zip(planted, (-1, 10**12, None), strict=True):
        attack(
            "INSERT INTO entity_heads (tenant_id, entity_id, kind, version, status, name, "
            "first_index, log_index, created_at, updated_at) "
            "SELECT tenant_id, CAST(:e AS uuid), kind, version, status, name, :f, log_index, "
            "created_at, updated_at FROM entity_heads WHERE tenant_id = :t LIMIT 1",
            e=entity_id,
            f=first,
            t=history.tenant,
        )
    run = history.audit("full")
    found = sorted(f["entity_id"] for f in run["findings"] if f.get("section") == "entity_heads")
    assert found == sorted(planted), run["findings"]
