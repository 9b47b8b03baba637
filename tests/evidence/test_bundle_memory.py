"""An evidence bundle streams in memory bounded independently of the log's size, and its bytes
are exactly those of a bundle built with the whole log's tree in memory."""

from __future__ import annotations

import json
import tracemalloc
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from shared import audit
from shared.evidence import bundle
from shared.integrity import digests, merkle
from shared.registry import certification, writes
from shared.security.principal import Principal
from shared.storage.receipt_rows import ReceiptRow
from shared.tlog import receipts as tlog_receipts
from tests.support.reliability_table import record
from tests.support.seeding import seed_skills


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _in_memory_entries(superuser, tenant: str, size: int) -> list[dict[str, Any]]:
    """Every entry below ``size`` with its inclusion proof from the whole tree held in memory,
    built from the stored leaves (the reference: what a bundle of this log must say)."""
    with superuser.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT idx, entry_type, kind, CAST(entity_id AS text), version, body, leaf_hash "
                "FROM log_entries WHERE tenant_id = :t AND idx < :n ORDER BY idx"
            ),
            {"t": tenant, "n": size},
        ).all()
        stored = conn.execute(
            text("SELECT first_idx, count, receipt, leaves FROM log_receipts WHERE tenant_id = :t"),
            {"t": tenant},
        ).all()
    held = tlog_receipts.entry_receipts(
        [ReceiptRow(r[0], r[1], bytes(r[2]), None if r[3] is None else bytes(r[3])) for r in stored]
    )
    nodes = merkle.MemoryNodes()
    nodes.append([bytes(row[6]) for row in rows])
    return [
        {
            "index": idx,
            "entry_type": entry_type,
            "entity_type": kind,
            "entity_id": entity_id,
            "version": version,
            "body": digests.b64(bytes(body)),
            "leaf_hash": digests.b64(bytes(leaf)),
            "inclusion_proof": [digests.b64(h) for h in merkle.inclusion_proof(nodes, idx, size)],
            "receipt": held[idx].to_json(),
        }
        for idx, entry_type, kind, entity_id, version, body, leaf in rows
    ]


def test_a_streamed_bundle_is_byte_for_byte_the_in_memory_one_and_verifies(
    export_client, superuser, make_token, plant_verify, tenant
):
    """More than two batches of seeded versions, an audit (the previous checkpoint), then
    amendments and certificates: the streamed bytes, statement and all, are those of the
    same header and the reference entries written by ``json_chunks`` (the signature is
    Ed25519, deterministic), and ``plant verify`` verifies them."""
    seed_skills(superuser, tenant, 0, 1_234)
    author = Principal("alice", tenant, frozenset({"author"}))
    certifier = Principal("carol", tenant, frozenset({"certifier"}))
    audit.run(Principal("audrey", tenant, frozenset({"auditor"})), {"mode": "full"})
    for i in range(3):
        skill = writes.create(
            author,
            "skills",
            {"name": f"late {i}", "description": "d", "category": "technical"},
            str(uuid.uuid4()),
        ).body["identity"]["id"]
        writes.amend(
            author, "skills", skill, {"description": "e", "amendment_reason": "x"}, '"v1"', "r"
        )
        certification.certify(certifier, "skills", skill, None, "r")

    response = export_client.get("/export/bundle", headers=_auth(make_token(tenant, "auditor")))
    assert response.status_code == 200
    streamed = response.get_data()
    document = json.loads(streamed)
    size = document["checkpoint"]["size"]
    # created, amended, certified (a version and a certificate), and a map commit by each
    # seal: the audit's, each certification's, the export's
    assert size == 1_234 + 1 + 1 + 3 * 5 + 1  # and the audit's report after its seal
    assert document["previous_checkpoint"]["size"] == 1_235
    head = {
        k: v for k, v in document.items() if k not in ("entries", "current_proofs", "statement")
    }
    reference = _in_memory_entries(superuser, tenant, size)
    assert [e["index"] for e in reference] == list(range(size))
    proofs = bundle.CurrentProofs(document["current_proofs"])
    expected = b"".join(bundle.json_chunks(iter([head, *reference, proofs])))
    assert streamed == expected

    code, out = plant_verify(streamed)
    assert code == 0, out
    assert out.splitlines()[-1].startswith("VERIFIED: ")
    assert f"completeness: every entry of the log below {size} (indexes 0..{size - 1})" in out


def _streaming_peak(export_client, tenant: str, make_token) -> tuple[int, int]:
    """The bundle's length and the peak traced memory while its entries stream (the seal and
    the header, before the first byte is sent, are outside the measure)."""
    response = export_client.get("/export/bundle", headers=_auth(make_token(tenant, "auditor")))
    assert response.status_code == 200
    tracemalloc.start()
    length = 0
    for chunk in response.response:
        length += len(chunk)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return length, peak


@pytest.mark.slow
def test_bundle_memory_does_not_grow_with_the_tenant(request, export_client, superuser, make_token):
    """Ten times the entries, yet the peak stays within a constant of the small bundle's: what
    grows is a batch's proofs, a hash longer each time the log doubles (about 0.6 MB from
    2,000 to 20,000 entries), where holding the whole tree grew by some 0.4 KB an entry."""
    small, large = f"t-{uuid.uuid4().hex[:10]}", f"t-{uuid.uuid4().hex[:10]}"
    seed_skills(superuser, small, 0, 2_000)
    for start in range(0, 20_000, 10_000):
        seed_skills(superuser, large, start, 10_000)
    small_length, small_peak = _streaming_peak(export_client, small, make_token)
    large_length, large_peak = _streaming_peak(export_client, large, make_token)
    assert large_length > 9 * small_length
    assert large_peak < small_peak + 2 * 1024 * 1024, (small_peak, large_peak)
    peaks = f"{small_peak / 2**20:.1f} MB at 2,000 entries, {large_peak / 2**20:.1f} MB at 20,000"
    record(request.node, "export: bundle of a 10x larger tenant", 2, f"peak traced {peaks}")
