"""A new version of the signing-key secret reaches a running function: after the refresh
interval (lowered here) the next seal is signed by its active key, before it by the old one;
a version that does not parse or drops a key is refused and the last good ring kept (issue
#23, point 4). Secret Manager is the gRPC fake, driven by the real client."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid

import pytest

from shared.config import ROOT, load
from shared.integrity import note
from shared.registry import writes
from shared.security import secrets
from shared.security.principal import Principal
from shared.security.secrets import SecretManagerSource
from shared.tlog import keys
from tests.fakes import secretmanager
from tests.support.reliability_table import record

NAME = "projects/p/secrets/plant-signing-keys/versions/latest"
TTL = 1.5  # PLANT_KEY_REFRESH_SECONDS for this test (60 s by default in the cloud)


def _seed() -> dict[str, str]:
    return {"seed": base64.b64encode(uuid.uuid4().bytes * 2).decode()}


@pytest.fixture
def fake():
    with secretmanager.running() as server:
        yield server


@pytest.fixture
def cloud_ring(fake, monkeypatch):
    """The process keyring read from the fake's `latest` version, as a cloud function reads
    it (the database, tokens and anchors stay the session's local ones)."""
    cfg = load(
        {
            "PLANT_ENV": "cloud",
            "DATABASE_URL": "postgresql://x@h/db",
            "PLANT_SIGNING_KEY_SECRET": NAME,
            "PLANT_KEY_REFRESH_SECONDS": str(TTL),
        }
    )
    monkeypatch.setattr(
        secrets, "_shared", SecretManagerSource(client=fake.client(), ttl_seconds=TTL)
    )
    monkeypatch.setattr(keys, "settings", lambda: cfg)
    keys.reset()
    yield
    keys.reset()  # the session's local ring is read again by the next test


def _publish(fake, document: dict) -> None:
    """``gcloud secrets versions add``: `latest` now names the new version."""
    fake.secrets[NAME] = json.dumps(document).encode()


@pytest.fixture
def log_client(database_url: str):
    import functions_framework

    return functions_framework.create_app(target="log", source=str(ROOT / "main.py")).test_client()


def _seal(log_client, tenant: str, make_token) -> str:
    author = Principal("alice", tenant, frozenset({"author"}))
    body = {"name": f"skill {uuid.uuid4().hex[:8]}", "description": "d", "category": "technical"}
    writes.create(author, "skills", body, str(uuid.uuid4()))
    token = make_token(tenant, "auditor")
    response = log_client.post("/log/seal", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201, response.json
    return response.json["checkpoint"]


def _signed_by(checkpoint: str, vkey: str) -> bool:
    try:
        note.open_note(checkpoint, [note.Verifier.from_vkey(vkey)])
    except note.NoteError:
        return False
    return True


def test_a_new_secret_version_signs_the_next_seal_after_the_ttl(
    fake, cloud_ring, log_client, tenant, make_token, request
):
    first = {"name": "plant.example/log", "keys": [_seed()]}
    _publish(fake, first)
    old = keys.keyring()  # loaded: the interval starts now
    loaded = time.monotonic()
    old_checkpoint = _seal(log_client, tenant, make_token)

    second = {"name": first["name"], "keys": [*first["keys"], _seed()]}
    _publish(fake, second)
    before = _seal(log_client, tenant, make_token)
    early = time.monotonic() - loaded
    assert early < TTL, f"the machine took {early:.1f} s for one seal: the test proves nothing"
    assert _signed_by(before, old.active.vkey), "re-read before the TTL"
    assert fake.calls == [NAME], "Secret Manager was called more than once within the TTL"

    time.sleep(max(0.0, TTL - (time.monotonic() - loaded)) + 0.1)
    after = _seal(log_client, tenant, make_token)
    new = keys.keyring()
    assert new.vkeys == [old.active.vkey, new.active.vkey]
    assert _signed_by(after, new.active.vkey) and not _signed_by(after, old.active.vkey)
    assert fake.calls == [NAME, NAME]
    # The old checkpoints still verify, with the keys the function serves.
    token = make_token(tenant, "reader")
    served = log_client.get("/log/keys", headers={"Authorization": f"Bearer {token}"}).json
    assert served == {"active": new.active.vkey, "keys": new.vkeys}
    assert _signed_by(old_checkpoint, served["keys"][0])
    assert _signed_by(before, served["keys"][0])
    record(
        request.node,
        "key rotation: new Secret Manager version on a running function",
        1,
        f"the seal within the TTL ({TTL:g} s here, 60 s by default) signed by the old key with "
        "one secret read, the next after it by the new key; old checkpoints verify",
    )


@pytest.mark.parametrize(
    "bad",
    [
        b'{"name": "plant.example/log", "keys": [{"seed": "AAAA',
        "drops-the-active-key",
    ],
    ids=["does-not-parse", "drops-a-key"],
)
def test_a_bad_secret_version_keeps_the_last_good_ring(
    fake, cloud_ring, log_client, tenant, make_token, caplog, request, bad
):
    first = {"name": "plant.example/log", "keys": [_seed()]}
    _publish(fake, first)
    good = keys.keyring()
    _seal(log_client, tenant, make_token)
    if bad == "drops-the-active-key":
        _publish(fake, {"name": first["name"], "keys": [_seed()]})
    else:
        fake.secrets[NAME] = bad
    time.sleep(TTL + 0.1)
    with caplog.at_level(logging.ERROR, logger="plant.keys"):
        checkpoint = _seal(log_client, tenant, make_token)  # the function stays up
    assert _signed_by(checkpoint, good.active.vkey)
    assert keys.keyring() is good
    status = keys.status()
    assert status["active_key_id"] == good.active.key_id_hex and status["reload_error"]
    assert "previous one stays in use" in caplog.text
    assert first["keys"][0]["seed"] not in caplog.text + status["reload_error"]
    record(
        request.node,
        "key rotation: a bad Secret Manager version (unparsable, or dropping a key)",
        1,
        "refused: the last good ring keeps signing, one error logged without key material, "
        "keys.status() names the reason",
    )
