"""Every acknowledged write returns its signed receipt (issue 22, item 1), which a client
checks offline with the log's public keys against the entry's bytes as logged; each is
stored beside its entry, one signature per statement's range."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import text

from shared.integrity import receipts
from shared.registry import certification, versions, writes
from shared.security.principal import Principal
from shared.tlog import keys
from tests.support import tampering


def _check(superuser, tenant: str, receipt: dict[str, Any], index: int) -> receipts.AnyReceipt:
    """The receipt verifies offline for this entry's bytes, and for nothing else."""
    vkeys, origin = keys.keyring().vkeys, keys.origin(tenant)
    entry = tampering.stored_body(superuser, tenant, index)
    parsed = receipts.verify(receipt, vkeys, origin, index, entry=entry)
    with pytest.raises(receipts.LeafMismatch):
        receipts.verify(receipt, vkeys, origin, index, entry=entry + b" ")
    with pytest.raises(receipts.WrongOrigin):
        receipts.verify(receipt, vkeys, keys.origin("other"), index, entry=entry)
    return parsed


def _stored(superuser, tenant: str) -> list[tuple[int, int]]:
    with superuser.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT first_idx, count FROM log_receipts WHERE tenant_id = :t ORDER BY first_idx"
            ),
            {"t": tenant},
        )
        return [(int(r[0]), int(r[1])) for r in rows]


def test_a_create_and_an_amendment_return_entry_receipts(api, superuser):
    created = api.post("/skills", {"name": "Go", "description": "d", "category": "technical"})
    assert created.status_code == 201
    index = created.json["audit_trail"]["log_index"]
    assert isinstance(
        _check(superuser, api.tenant, created.json["receipt"], index), receipts.Receipt
    )
    entity = created.json["identity"]["id"]
    amended = api.patch(
        f"/skills/{entity}", {"description": "e", "amendment_reason": "r"}, **{"If-Match": '"v1"'}
    )
    assert amended.status_code == 200
    assert amended.json["receipt"]["index"] == index + 1
    _check(superuser, api.tenant, amended.json["receipt"], index + 1)
    assert _stored(superuser, api.tenant) == [(index, 1), (index + 1, 1)]


def test_a_bulk_create_returns_one_batch_receipt_and_each_items_path(api, superuser):
    bodies = [{"name": f"s{i}", "description": "d", "category": "technical"} for i in range(7)]
    response = api.post("/skills/batch", {"items": bodies})
    assert response.status_code == 201
    batch = response.json["receipt"]
    assert (batch["type"], batch["first"], batch["count"]) == ("batch", 0, 7)
    for item in response.json["items"]:
        entry = {
            **batch,
            "type": "batch_entry",
            "index": item["log_index"],
            "leaf_hash": item["leaf_hash"],
            "path": item["receipt_path"],
        }
        parsed = _check(superuser, api.tenant, entry, item["log_index"])
        assert isinstance(parsed, receipts.BatchEntryReceipt)
    assert _stored(superuser, api.tenant) == [(0, 7)]


def test_a_certification_and_its_cascade_return_receipts(api, superuser, tenant):
    skill = api.skill("Rust")
    carol = Principal("carol", tenant, frozenset({"certifier"}))
    made = certification.certify(carol, "skills", skill, None, "r")
    _check(superuser, tenant, made["certificate_receipt"], made["certificate_log_index"])
    _check(superuser, tenant, made["receipt"], made["entity"]["audit_trail"]["log_index"])
    role = api.post(
        "/job-roles",
        {
            "name": "dev",
            "description": "d",
            "seniority_level": "junior",
            "required_skills": [skill],
        },
    ).json["identity"]["id"]
    certification.certify(carol, "job-roles", role, None, "r")
    moved = api.post(
        f"/skills/{skill}/status", {"status": "suspended", "reason": "x"}, **{"If-Match": '"v2"'}
    )
    assert moved.status_code == 200, moved.json
    (cascade,) = moved.json["cascade"]
    receipt = moved.json["receipt"]
    assert (receipt["type"], receipt["count"]) == ("batch_entry", 2)  # the write and its cascade
    _check(superuser, tenant, receipt, moved.json["audit_trail"]["log_index"])
    assert receipt["first"] == moved.json["audit_trail"]["log_index"]
    assert cascade["log_index"] == receipt["first"] + 1


def test_grouped_writes_share_one_batch_receipt_each_with_its_path(database_url, superuser, tenant):
    author = Principal("alice", tenant, frozenset({"author", "reader"}))

    def create(i: int) -> versions.Document:
        return writes.create(
            author, "skills", {"name": f"g{i}", "description": "d", "category": "technical"}, "r"
        )

    with ThreadPoolExecutor(8) as pool:
        docs = list(pool.map(create, range(32)))
    for doc in docs:
        assert doc.receipt is not None
        _check(superuser, tenant, doc.receipt, doc.body["audit_trail"]["log_index"])
    stored = _stored(superuser, tenant)
    assert sum(count for _, count in stored) == 32  # every entry covered once
    assert [first for first, _ in stored] == sorted(first for first, _ in stored)
    assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(stored))


def test_a_tenant_name_that_is_sql_is_stored_as_text(database_url, superuser):
    """The receipt's row is written with its values in the query text (one round trip with
    the commit): the tenant goes as UTF-8 hex, so a name made of SQL is only a name."""
    tenant = "t-'); DROP TABLE log_entries; --\u00e9"
    author = Principal("alice", tenant, frozenset({"author", "reader"}))
    doc = writes.create(
        author, "skills", {"name": "x", "description": "d", "category": "technical"}, "r"
    )
    assert doc.receipt is not None
    _check(superuser, tenant, doc.receipt, doc.body["audit_trail"]["log_index"])
    assert _stored(superuser, tenant) == [(0, 1)]
