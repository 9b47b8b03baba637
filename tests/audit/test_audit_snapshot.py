"""An audit reads one snapshot: writes committed while it runs are wholly outside it."""

from __future__ import annotations

from shared import audit
from shared.audit import entries
from shared.registry import writes


def test_a_write_committed_mid_audit_is_not_a_finding(history, monkeypatch):
    real_beyond = entries.beyond
    written = []

    def write_then_look_beyond(state, size, sealed):
        # Another client's create commits after the audit read the log's size and before it
        # looks for rows past that size.
        if not written:
            written.append(
                writes.create(
                    history.author,
                    "skills",
                    {"name": "mid-audit", "description": "d", "category": "technical"},
                    "r",
                )
            )
        return real_beyond(state, size, sealed)

    monkeypatch.setattr(entries, "beyond", write_then_look_beyond)
    run, _ = audit.run(history.auditor, {"mode": "full"})
    assert written, "the concurrent write did not happen"
    assert run["findings"] == [], run["findings"]
    monkeypatch.setattr(entries, "beyond", real_beyond)
    assert history.audit("incremental")["findings"] == []
