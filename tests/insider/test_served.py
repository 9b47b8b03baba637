"""What the API serves of a ledger an insider edited: never a 500, never bytes that fail
their own digest, no timestamp that no signature covers; and an audit run an insider left
'running' blocks nothing."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest

from shared.errors import IntegrityViolation
from shared.evidence import reports
from shared.integrity import canonical, receipts
from shared.registry import certification, reads, writes
from shared.security.principal import Principal
from shared.tlog import keys, proofs
from tests.insider.conftest import Tenant
from tests.support.reliability_table import record


def _rewrite(attack, t: Tenant, index: int, body: bytes, *, consistent: bool) -> None:
    """Entry ``index``'s bytes replaced; with ``consistent`` its digest and leaf hash too."""
    columns = (
        ", digest = sha256(:b), leaf_hash = sha256('\\x00'::bytea || :b)" if consistent else ""
    )
    attack(f"UPDATE log_entries SET body = :b{columns} WHERE tenant_id = :t AND idx = :i",
           b=body, t=t.name, i=index)  # fmt: skip


@pytest.mark.insider_short
@pytest.mark.parametrize(
    ("body", "consistent"),
    [(b"not json", False), (b"not json", True), (b'{"identity":{}}', True)],
    ids=["bytes-only", "not-json-with-digests", "json-missing-sections-with-digests"],
)
def test_an_invalid_body_is_a_409_naming_its_index(
    fixture_tenant, attack, request, body, consistent
):
    t = fixture_tenant
    entity = t.skills[7]
    index = t.index(entity, 2)
    _rewrite(attack, t, index, body, consistent=consistent)
    for read in (
        lambda: reads.list_versions(t.author, "skills", entity),
        lambda: reads.get_version(t.author, "skills", entity, "2"),
        lambda: reads.get(t.author, "skills", entity),
    ):
        with pytest.raises(IntegrityViolation) as raised:
            read()
        assert raised.value.status == 409
        assert raised.value.extensions["log_index"] == index
    record(request.node, "insider: log_entries: a body the API would serve made invalid", 1,
           "409 integrity-violation naming the index")  # fmt: skip


@pytest.mark.insider_short
def test_a_certificate_time_is_the_signed_one(fixture_tenant, attack, request):
    t = fixture_tenant
    entity = t.skills[1]
    index = t.index(entity, 2, "certificate")
    signed = certification.certificates(t.author, "skills", entity)["certificates"][0]["created_at"]
    attack("UPDATE log_entries SET created_at = '2001-01-01' WHERE tenant_id = :t AND idx = :i",
           t=t.name, i=index)  # fmt: skip
    served = certification.certificates(t.author, "skills", entity)["certificates"][0]
    statement = json.loads(base64.b64decode(served["envelope"]["payload"]))
    assert served["created_at"] == signed == statement["predicate"]["certified_at"]
    record(request.node, "insider: log_entries: a certificate's created_at changed", 1,
           "the API serves the signed certified_at")  # fmt: skip


@pytest.mark.insider_short
def test_a_fake_running_run_started_in_the_future_blocks_nothing(fixture_tenant, attack, request):
    t = fixture_tenant
    fake = str(uuid.uuid4())
    attack("INSERT INTO audit_runs (tenant_id, id, mode, status, requested_by, started_at) "
           "VALUES (:t, CAST(:id AS uuid), 'full', 'running', 'x', now() + interval '10 years')",
           t=t.name, id=fake)  # fmt: skip
    run = t.audit("incremental")
    assert run["id"] != fake and run["findings"] == []
    status = t.one("SELECT status FROM audit_runs WHERE tenant_id = :t AND id = CAST(:id AS uuid)",
                   id=fake)[0]  # fmt: skip
    assert status == "failed"
    record(request.node, "insider: audit_runs: a fake 'running' run", 1,
           "abandoned; the next audit runs")  # fmt: skip


@pytest.mark.insider_short
def test_a_log_entry_time_is_its_signed_receipts(fixture_tenant, attack, request):
    """``GET /log/entries/{i}`` serves the time the write's signed receipt holds, with the
    receipt: a version row's ``created_at`` rewritten changes nothing served."""
    t = fixture_tenant
    index = t.index(t.skills[6], 2)
    before = proofs.entry(t.author, str(index))
    attack("UPDATE log_entries SET created_at = '2001-01-01' WHERE tenant_id = :t AND idx = :i",
           t=t.name, i=index)  # fmt: skip
    served = proofs.entry(t.author, str(index))
    assert served == before
    assert served["created_at"] is not None and not served["created_at"].startswith("2001")
    receipt = receipts.verify(
        served["receipt"], keys.keyring().vkeys, keys.origin(t.name), index,
        entry=base64.b64decode(served["body"]),
    )  # fmt: skip
    moment = datetime.fromtimestamp(receipt.time_ms / 1000, UTC)
    assert served["created_at"] == canonical.time_text(moment)
    record(request.node, "insider: log_entries: a version's created_at changed", 1,
           "the API serves the receipt's signed time")  # fmt: skip


@pytest.mark.insider_short
def test_a_reports_certifier_and_time_are_the_signed_ones(fixture_tenant, attack, request):
    """After an amendment the report takes the certification from the certificate entry: its
    signed statement's certifier and time, not the row's ``actor`` and ``created_at``."""
    t = fixture_tenant
    entity = t.skills[1]
    writes.amend(t.author, "skills", entity, {"description": "later", "amendment_reason": "r"},
                 '"v3"', "r")  # fmt: skip
    index = t.index(entity, 2, "certificate")
    auditor = Principal("audrey", t.name, frozenset({"auditor"}))

    def reported() -> dict:
        _head, chunks = reports.report(auditor, {"format": "json"})
        rows = json.loads(b"".join(chunks))["entities"]
        return next(r for r in rows if r["id"] == entity)

    before = reported()
    attack("UPDATE log_entries SET actor = 'mallory', created_at = '2001-01-01' "
           "WHERE tenant_id = :t AND idx = :i", t=t.name, i=index)  # fmt: skip
    after = reported()
    signed = (before["certifier"], before["certified_at"])
    assert (after["certifier"], after["certified_at"]) == signed
    assert after["certifier"] == "carol" and not after["certified_at"].startswith("2001")
    assert after["certificate_log_index"] == index
    record(request.node, "insider: log_entries: a certificate row's actor and created_at", 1,
           "the report serves the signed certifier and time")  # fmt: skip
