"""The witness function's own route with bad bodies (issue 25, item 4): every refusal is
problem+json naming why (but C2SP's 409, text/x.tlog.size), nothing is stored, whatever the
framing; unknown origin 404, a signature by no trusted key 403, over 256 KiB 413."""

from __future__ import annotations

import json
import os

import pytest

from shared import config
from shared.integrity import note
from shared.integrity.witness_protocol import format_add_checkpoint
from shared.tlog import witnessing
from tests.support.routes import FRAMINGS, send

ORIGIN = "plant.example/log/witnessed"
TEXT = {"Content-Type": "text/plain"}


@pytest.fixture
def witness(clients, monkeypatch, tmp_path):
    log = note.Signer.from_seed(ORIGIN, os.urandom(32))
    key = tmp_path / "witness.json"
    key.write_text(
        json.dumps({"name": "w", "seed": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="})
    )
    monkeypatch.setenv("PLANT_WITNESS_KEY_FILE", str(key))
    monkeypatch.setenv("PLANT_WITNESS_LOGS", json.dumps({ORIGIN: [log.vkey]}))
    config.settings.cache_clear()
    witnessing.signer.cache_clear()
    witnessing.trusted.cache_clear()
    yield clients["witness"], log
    monkeypatch.delenv("PLANT_WITNESS_KEY_FILE")
    monkeypatch.delenv("PLANT_WITNESS_LOGS")
    config.settings.cache_clear()
    witnessing.signer.cache_clear()
    witnessing.trusted.cache_clear()


@pytest.mark.parametrize("framing", FRAMINGS)
def test_refusals_are_problems_whatever_the_framing(witness, framing):
    client, log = witness
    stranger = note.Signer.from_seed("plant.example/log/other", os.urandom(32))
    cases = [
        (b"old 0\r\n\r\n", 400),
        (b"\xff\xfe", 400),
        (format_add_checkpoint(0, [], note.sign_note(note.checkpoint_body(
            "plant.example/log/other", 1, b"\x01" * 32), [stranger])), 404),
        (format_add_checkpoint(0, [], note.sign_note(note.checkpoint_body(
            ORIGIN, 1, b"\x01" * 32), [note.Signer.from_seed(ORIGIN, os.urandom(32))])), 403),
        (b"old 0\n\n" + b"x" * (300 * 1024), 413),
    ]  # fmt: skip
    for body, status in cases:
        response = send(client, "POST", "/witness/add-checkpoint", body, framing, TEXT)
        assert response.status_code == status, (body[:40], response.get_data()[:200])
        assert response.mimetype == "application/problem+json"
    cosigned = format_add_checkpoint(
        0, [], note.sign_note(note.checkpoint_body(ORIGIN, 1, b"\x01" * 32), [log])
    )
    first = send(client, "POST", "/witness/add-checkpoint", cosigned, framing, TEXT)
    assert first.status_code in (200, 409)  # 409 once an earlier framing's run stored size 1
    again = send(client, "POST", "/witness/add-checkpoint", cosigned, framing, TEXT)
    assert again.status_code == 409 and again.mimetype == "text/x.tlog.size"
    assert again.get_data() == b"1\n"
