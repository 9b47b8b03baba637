"""Signed write receipts against an insider with the database but not the key (issue 22,
item 1). Each attack is made as the superuser on writes acknowledged after a clean audit and
not sealed since, then audited incrementally and in full: both name exactly the entry, by
kind, index, entity, version and the receipt's failure."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from shared.audit import receipts as audit_receipts
from shared.integrity import canonical, receipts
from shared.registry import batches, documents, versions, writes
from shared.rules import kinds
from shared.security.principal import Principal
from shared.storage import ledger
from shared.storage.engine import database
from shared.storage.receipt_rows import ReceiptRow
from shared.tlog import keys
from tests.audit.conftest import History
from tests.support import tampering

Found = list[tuple[Any, ...]]


def _named(run: dict[str, Any]) -> Found:
    return [
        (f["kind"], f["log_index"], f["entity_id"], f["version"], f.get("reason"))
        for f in run["findings"]
    ]


def _both_audits(history: History) -> tuple[Found, Found]:
    """(incremental findings, full findings) on the log as the attack left it."""
    return _named(history.audit("incremental")), _named(history.audit("full"))


def _amended(history: History) -> tuple[int, str, int]:
    """After a clean audit: an acknowledged amendment, not sealed; (index, entity, version)."""
    assert history.audit("full")["findings"] == []
    doc = history.amend(history.skills[2], 1, "writes safe Rust")
    assert doc.receipt is not None and doc.receipt["index"] == doc.body["audit_trail"]["log_index"]
    return doc.body["audit_trail"]["log_index"], history.skills[2], 2


def _rewrite_consistently(
    superuser: Engine, attack: Any, tenant: str, index: int, description: str
) -> None:
    """The entry's description rewritten with its digest, leaf hash and locators to match."""
    doc = canonical.read(tampering.stored_body(superuser, tenant, index))
    doc["metadata"]["description"] = description
    forged = documents.encode(doc)
    attack(
        "UPDATE log_entries SET body = :b, digest = :d, leaf_hash = :l, field_hashes = :f "
        "WHERE tenant_id = :t AND idx = :i",
        b=forged.body,
        d=forged.digest,
        l=forged.leaf_hash,
        f=forged.field_hashes,
        t=tenant,
        i=index,
    )


def test_a_forged_version_appended_at_the_tail_has_no_receipt(history, superuser):
    """The registry's own code run by an insider without the key: a well-formed version 3
    (digest, leaf, chain, head, counter all right) appended through ``plant_append_version``."""
    assert history.audit("full")["findings"] == []
    kind = kinds.resolve_kind("skills")
    target = history.skills[0]
    with database().transaction(history.tenant) as conn:
        cur = writes.lock_current(conn, kind, target, None, lock=False)
    new = versions.new_version(
        history.tenant,
        history.author.subject,
        kind,
        versions.VersionWrite(
            entity_id=target,
            head=cur.head,
            fields={**cur.fields, "description": "forged"},
            status=cur.head.status,
            reason="forged",
            action="amend",
            request_id="mallory",
            created_at=cur.doc["lifecycle"]["created_at"],
            previous_digest=cur.entry.digest,
        ),
    )
    with superuser.begin() as conn:
        conn.execute(text("SELECT set_config('plant.tenant', :t, true)"), {"t": history.tenant})
        index = ledger.append_version(conn, new).index
    expected = [("receipt_missing", index, target, 3, None)]
    assert _both_audits(history) == (expected, expected)


def test_an_unsealed_acknowledged_write_rewritten_consistently_is_named(history, superuser, attack):
    """Bytes, digest, leaf hash and locators rewritten together before any seal: the audit's
    own seal then signs the forgery, but the receipt vouches for the original leaf."""
    index, entity, version = _amended(history)
    _rewrite_consistently(superuser, attack, history.tenant, index, "writes unsafe Rust")
    expected = [("receipt_invalid", index, entity, version, "leaf_mismatch")]
    assert _both_audits(history) == (expected, expected)


def test_a_deleted_receipt_is_missing(history, attack):
    index, entity, version = _amended(history)
    attack(
        "DELETE FROM log_receipts WHERE tenant_id = :t AND first_idx = :i",
        t=history.tenant,
        i=index,
    )
    expected = [("receipt_missing", index, entity, version, None)]
    assert _both_audits(history) == (expected, expected)


def test_another_entrys_receipt_copied_over_is_an_index_mismatch(history, attack):
    index, entity, version = _amended(history)
    t = history.tenant
    attack("DELETE FROM log_receipts WHERE tenant_id = :t AND first_idx = :i", t=t, i=index)
    attack(
        "INSERT INTO log_receipts (tenant_id, first_idx, count, receipt, leaves) "
        "SELECT tenant_id, :i, count, receipt, leaves FROM log_receipts "
        "WHERE tenant_id = :t AND first_idx = 0",
        t=t,
        i=index,
    )
    expected = [("receipt_invalid", index, entity, version, "index_mismatch")]
    assert _both_audits(history) == (expected, expected)


def test_an_entry_replayed_from_another_tenant_is_a_wrong_origin(history, attack, superuser):
    """Another tenant's genuine entry and its genuine receipt, copied to this log's tail: named
    by the entry's own tenant (``altered``, row ``tenant_id``); its receipt is a wrong origin."""
    assert history.audit("full")["findings"] == []
    other = Principal("bob", history.tenant + "-b", frozenset({"author"}))
    made = writes.create(
        other, "skills", {"name": "Zig", "description": "d", "category": "technical"}, "r"
    )
    source = made.body["audit_trail"]["log_index"]
    with superuser.connect() as conn:
        size = conn.execute(
            text("SELECT size FROM log_heads WHERE tenant_id = :t"), {"t": history.tenant}
        ).scalar_one()
    params = {"t": history.tenant, "o": other.tenant, "s": source, "i": size}
    attack(
        "INSERT INTO log_entries (tenant_id, idx, entry_type, kind, entity_id, version, body, "
        "digest, leaf_hash, prev_digest, field_hashes, actor) SELECT :t, :i, entry_type, kind, "
        "entity_id, version, body, digest, leaf_hash, prev_digest, field_hashes, actor "
        "FROM log_entries WHERE tenant_id = :o AND idx = :s",
        **params,
    )
    attack(
        "INSERT INTO log_receipts (tenant_id, first_idx, count, receipt, leaves) "
        "SELECT :t, :i, count, receipt, leaves FROM log_receipts "
        "WHERE tenant_id = :o AND first_idx = :s",
        **params,
    )
    attack("UPDATE log_heads SET size = size + 1 WHERE tenant_id = :t", t=history.tenant)
    entity = made.body["identity"]["id"]
    # Since the tenant check (issue 22, item 2) the entries pass names the replayed entry
    # first, by the column its bytes contradict (the body's tenant is the other one): one
    # finding, and the receipts pass names nothing more of an index already reported.
    runs = history.audit("incremental"), history.audit("full")
    for run in runs:
        assert _named(run) == [("altered", size, entity, 1, None)]
        (finding,) = run["findings"]
        assert (finding["section"], finding["field"]) == ("row", "tenant_id")
    # The copied receipt on its own still vouches for nothing here: it was signed for the
    # other tenant's log (what the receipts pass would name, were the entry not named first).
    with superuser.connect() as conn:
        (row,) = [
            r
            for r in conn.execute(
                text(
                    "SELECT first_idx, count, receipt, leaves FROM log_receipts "
                    "WHERE tenant_id = :t AND first_idx = :i"
                ),
                {"t": history.tenant, "i": size},
            )
        ]
    stored = ReceiptRow(row[0], row[1], bytes(row[2]), None if row[3] is None else bytes(row[3]))
    with pytest.raises(receipts.WrongOrigin):
        audit_receipts.vouched(stored, list(keys.keyring().verifiers), keys.origin(history.tenant))


def test_one_entry_of_a_bulk_batch_rewritten_is_named_alone(history, superuser, attack):
    """A batch receipt signs the range's root; the leaves stored beside it name which entry."""
    assert history.audit("full")["findings"] == []
    bodies = [{"name": f"bulk {i}", "description": "d", "category": "technical"} for i in range(5)]
    made = batches.create_batch(history.author, "skills", bodies, "r")
    target = made["items"][3]
    _rewrite_consistently(superuser, attack, history.tenant, target["log_index"], "e")
    expected = [("receipt_invalid", target["log_index"], target["id"], 1, "leaf_mismatch")]
    assert _both_audits(history) == (expected, expected)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (
            "set_byte(receipt, length(receipt) - 1, get_byte(receipt, length(receipt) - 1) # 1)",
            "bad_signature",
        ),
        ("set_byte(receipt, 2, get_byte(receipt, 2) # 1)", "wrong_key"),
        ("'\\x02'::bytea || substring(receipt from 2)", "unsupported_version"),
    ],
)
def test_a_tampered_receipt_is_invalid_for_its_reason(history, attack, edit: str, reason: str):
    index, entity, version = _amended(history)
    attack(
        f"UPDATE log_receipts SET receipt = {edit} WHERE tenant_id = :t AND first_idx = :i",
        t=history.tenant,
        i=index,
    )
    expected = [("receipt_invalid", index, entity, version, reason)]
    assert _both_audits(history) == (expected, expected)


def test_receipts_signed_by_a_rotated_key_still_verify(history, superuser):
    """The audit checks with the whole keyring: entries signed before a rotation stay valid."""
    from shared.config import settings
    from shared.tlog import keys

    keys.rotate_local(settings())
    doc = history.amend(history.skills[2], 1, "after the rotation")
    assert doc.receipt is not None
    assert doc.receipt["key_id"] == keys.keyring().active.key_id_hex
    assert history.audit("full")["findings"] == []
