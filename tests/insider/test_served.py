"""What the API serves of a ledger an insider edited: never a 500, never bytes that fail
their own digest, no timestamp that no signature covers; and an audit run an insider left
'running' blocks nothing."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from shared.errors import IntegrityViolation
from shared.registry import certification, reads
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
