"""The audit verifies every stored witness cosignature (issue 25, item 5): a valid one is no
finding; one rewritten by a superuser, or by a witness no longer configured, is a
``signature_invalid`` finding naming the witness and the checkpoint."""

from __future__ import annotations

import json
import os
import time

import pytest

from shared import config
from shared.integrity import cosignature
from shared.storage import cosignatures, tree
from shared.storage.engine import database


@pytest.fixture
def witnessed(monkeypatch, history):
    w1 = cosignature.WitnessSigner.from_seed("w1", os.urandom(32))
    # Configured with a URL nothing answers on: the audit's own seal must not wait on it.
    entry = {"name": "w1", "vkey": w1.vkey, "url": "http://127.0.0.1:9"}
    monkeypatch.setenv("PLANT_WITNESSES", json.dumps({history.tenant: [entry]}))
    monkeypatch.setenv("PLANT_WITNESS_TIMEOUT_SECONDS", "1")
    config.settings.cache_clear()
    with database().transaction(history.tenant) as conn:
        last = tree.latest_checkpoint(conn)
        assert last is not None
        line = w1.cosign(last.note[: last.note.index("\n\n") + 1], int(time.time())).line
        cosignatures.insert(conn, last.size, "w1", line)
    yield last.size, line
    monkeypatch.delenv("PLANT_WITNESSES")
    monkeypatch.delenv("PLANT_WITNESS_TIMEOUT_SECONDS")
    config.settings.cache_clear()


def test_a_valid_cosignature_is_no_finding_and_a_rewritten_one_is_named(history, witnessed, attack):
    size, line = witnessed
    assert history.audit("full")["findings"] == []
    parsed = cosignature.parse_cosignature(line)
    edited = cosignature.Cosignature("w1", parsed.key_id, parsed.timestamp + 1, parsed.signature)
    attack(
        "UPDATE checkpoint_cosignatures SET line = :line WHERE tenant_id = :t AND size = :s",
        line=edited.line,
        t=history.tenant,
        s=size,
    )
    findings = history.audit("full")["findings"]
    assert [f["kind"] for f in findings] == ["signature_invalid"]
    assert findings[0]["detail"] == (
        f"the cosignature by w1 on checkpoint {size}: "
        "its cosignature does not verify over this checkpoint"
    )


def test_a_cosignature_by_an_unconfigured_witness_is_named(history, witnessed, attack):
    size, _ = witnessed
    attack(
        "UPDATE checkpoint_cosignatures SET witness = 'w9' WHERE tenant_id = :t AND size = :s",
        t=history.tenant,
        s=size,
    )
    findings = history.audit("full")["findings"]
    assert len(findings) == 1 and "by w9 on checkpoint" in findings[0]["detail"]
    assert "no witness of that name is configured" in findings[0]["detail"]
