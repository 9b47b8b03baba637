"""Secret Manager through the real client against a local gRPC fake."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from fakes import secretmanager

from shared import keys
from shared.errors import ConfigurationError
from shared.secrets import SecretManagerSource

NAME = "projects/p/secrets/plant-signing-key/versions/latest"
VALUE = json.dumps(
    {"name": "plant.example/log", "keys": [{"seed": base64.b64encode(b"\x11" * 32).decode()}]}
).encode()


@pytest.fixture
def fake():
    with secretmanager.running() as server:
        server.secrets[NAME] = VALUE
        yield server


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


def test_keyring_loads_from_secret_manager(fake, monkeypatch):
    from shared import secrets
    from shared.config import load

    monkeypatch.setattr(secrets, "_shared", SecretManagerSource(client=fake.client()))
    cfg = load(
        {
            "PLANT_ENV": "cloud",
            "DATABASE_URL": "postgresql://x@h/db",
            "PLANT_SIGNING_KEY_SECRET": NAME,
        }
    )
    ring = keys.load(cfg)
    assert ring.active.name == "plant.example/log"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda f: f.secrets.clear(), "does not exist"),
        (lambda f: f.denied.add(NAME), "may not read secret"),
    ],
)
def test_missing_or_forbidden_secret_is_a_clear_startup_error(fake, setup, message, caplog):
    setup(fake)
    source = SecretManagerSource(client=fake.client())
    with caplog.at_level(logging.DEBUG), pytest.raises(ConfigurationError) as caught:
        source.get(NAME)
    assert message in str(caught.value) and NAME in str(caught.value)
    assert VALUE.decode() not in caplog.text


def test_malformed_resource_name_is_refused_before_any_call(fake):
    source = SecretManagerSource(client=fake.client())
    with pytest.raises(ConfigurationError):
        source.get("plant-signing-key")
    assert fake.calls == []


def test_the_value_never_reaches_logs_or_errors(fake, caplog):
    source = SecretManagerSource(client=fake.client())
    with caplog.at_level(logging.DEBUG):
        value = source.get(NAME)
        with pytest.raises(ConfigurationError) as caught:
            keys.parse(b"{" + value)
    secret_seed = base64.b64encode(b"\x11" * 32).decode()
    assert secret_seed not in caplog.text
    assert secret_seed not in str(caught.value)
