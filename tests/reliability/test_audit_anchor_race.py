"""An audit reads the database in one snapshot, but the anchor store lives outside it: a seal
that commits and anchors after the audit's snapshot was taken must not look like a rollback.
The soak found it (about one 60-second run in three); this forces the interleaving."""

from __future__ import annotations

import uuid

from shared import audit, tlog
from shared.audit import checkpoints
from shared.registry import writes
from shared.security.principal import Principal
from tests.support.reliability_table import record


def test_a_seal_anchored_after_the_audit_snapshot_is_not_a_rollback(
    database_url, tenant, monkeypatch, request
):
    author = Principal("alice", tenant, frozenset({"author"}))
    auditor = Principal("audrey", tenant, frozenset({"auditor"}))
    writes.create(author, "industries", {"name": "before", "description": "d"}, "r")
    tlog.seal(tenant)
    real_anchor = checkpoints.anchor
    sealed = []

    def another_client_writes_and_seals_first(state, store):
        # The audit's snapshot is already taken (its first statements ran); another client's
        # write and seal commit and reach the anchor store now.
        if not sealed:
            name = f"during-{uuid.uuid4().hex[:6]}"
            writes.create(author, "industries", {"name": name, "description": "d"}, "r")
            sealed.append(tlog.seal(tenant))
        return real_anchor(state, store)

    monkeypatch.setattr(checkpoints, "anchor", another_client_writes_and_seals_first)
    run, _ = audit.run(auditor, {"mode": "incremental"})
    record(
        request.node,
        "seal anchored while an audit reads its snapshot",
        1,
        f"{len(run['findings'])} findings ({', '.join(f['kind'] for f in run['findings'])})",
    )
    assert sealed and sealed[0].created, "the concurrent seal did not happen"
    assert run["findings"] == [], run["findings"]
