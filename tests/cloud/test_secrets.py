"""Secret Manager through the real client against a local gRPC fake."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shared.config import load
from shared.errors import ConfigurationError
from shared.security.secrets import SecretManagerSource
from shared.tlog import keys
from tests.fakes import secretmanager

ROOT = Path(__file__).resolve().parents[2]
NAME = "projects/p/secrets/plant-signing-key/versions/latest"
SEED = base64.b64encode(b"\x11" * 32).decode()
VALUE = json.dumps({"name": "plant.example/log", "keys": [{"seed": SEED}]}).encode()


@pytest.fixture
def fake():
    with secretmanager.running() as server:
        server.secrets[NAME] = VALUE
        yield server


def _cloud(secret: str = NAME):
    return load(
        {
            "PLANT_ENV": "cloud",
            "DATABASE_URL": "postgresql://x@h/db",
            "PLANT_SIGNING_KEY_SECRET": secret,
        }
    )


def _chain(exc: BaseException | None) -> str:
    """Every message and repr in an exception chain."""
    out = []
    while exc is not None:
        out += [str(exc), repr(exc)]
        exc = exc.__cause__ or exc.__context__
    return "\n".join(out)


def test_reads_a_secret_with_the_real_client_and_caches_it(fake):
    source = SecretManagerSource(client=fake.client(), ttl_seconds=60)
    assert source.get(NAME) == VALUE
    assert source.get(NAME) == VALUE
    assert fake.calls == [NAME]


def test_cache_expires_after_its_ttl(fake):
    source = SecretManagerSource(client=fake.client(), ttl_seconds=0)
    source.get(NAME)
    source.get(NAME)
    assert fake.calls == [NAME, NAME]


def test_keyring_loads_from_secret_manager_at_start_up(fake, monkeypatch):
    from shared.security import secrets

    monkeypatch.setattr(secrets, "_shared", SecretManagerSource(client=fake.client()))
    assert keys.load(_cloud()).active.name == "plant.example/log"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda f: f.secrets.clear(), "does not exist"),
        (lambda f: f.denied.add(NAME), "may not read secret"),
        (lambda f: f.corrupt.add(NAME), "corrupted"),
    ],
    ids=["not-found", "permission-denied", "bad-checksum"],
)
def test_missing_forbidden_or_corrupt_secret_stops_start_up_naming_it(
    fake, monkeypatch, caplog, setup, message
):
    from shared.security import secrets

    setup(fake)
    monkeypatch.setattr(secrets, "_shared", SecretManagerSource(client=fake.client()))
    with caplog.at_level(logging.DEBUG), pytest.raises(ConfigurationError) as caught:
        keys.load(_cloud())  # the start-up path: the keyring is read on first use
    assert message in str(caught.value) and NAME in str(caught.value)
    assert SEED not in _chain(caught.value) and SEED not in caplog.text


def test_malformed_resource_name_is_refused_before_any_call(fake):
    source = SecretManagerSource(client=fake.client())
    for bad in ("plant-signing-key", "projects/p/secrets/s", "projects/p/secrets/s/versions/0"):
        with pytest.raises(ConfigurationError, match="projects/P/secrets/S/versions/V"):
            source.get(bad)
    assert fake.calls == []


def test_the_value_never_reaches_logs_reprs_or_errors(fake, caplog):
    source = SecretManagerSource(client=fake.client())
    with caplog.at_level(logging.DEBUG):
        value = source.get(NAME)
        with pytest.raises(ConfigurationError) as caught:
            keys.parse(value.replace(b'"keys"', b'"kees"'))  # malformed, still holds the seed
    leaked = [caplog.text, _chain(caught.value), repr(source)]
    leaked += [repr(record.__dict__) for record in caplog.records]
    assert not any(SEED in text or VALUE.decode() in text for text in leaked)


def test_the_clients_own_debug_logging_does_not_print_the_value(fake):
    """With GOOGLE_SDK_PYTHON_LOGGING_SCOPE set, the Google client logs every response payload
    (the secret, base64) as structured JSON; the source blanks those fields."""
    secret = b"hunter2-do-not-print"
    fake.secrets["projects/p/secrets/s/versions/1"] = secret
    script = textwrap.dedent(
        f"""
        from tests.fakes.secretmanager import FakeSecretManager
        from shared.security.secrets import SecretManagerSource
        fake = FakeSecretManager(address={fake.address!r})
        value = SecretManagerSource(client=fake.client()).get("projects/p/secrets/s/versions/1")
        assert value == {secret!r}
        """
    )
    env = {**os.environ, "GOOGLE_SDK_PYTHON_LOGGING_SCOPE": "google.cloud.secretmanager_v1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert "Received response" in output  # the client's payload logging really was on
    assert base64.b64encode(secret).decode() not in output and secret.decode() not in output
