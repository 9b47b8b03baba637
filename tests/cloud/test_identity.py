"""Google identities, offline: real google-auth verification against a local certificate
endpoint with keys the test makes, and the trust-the-platform mode that only exists when
explicitly configured."""

from __future__ import annotations

import base64
import json
import time

import pytest

from shared import config
from shared.config import load
from shared.errors import ConfigurationError, Forbidden, ServiceUnavailable, Unauthenticated
from shared.security import authenticators, local_tokens
from shared.security.google_identity import (
    CachedCerts,
    GoogleTokenVerifier,
    PlatformIdentity,
    cloud_authenticator,
)
from tests.fakes.google_certs import AUDIENCE, EMAIL, FakeGoogleCerts

MAP = json.dumps({EMAIL: {"tenant": "acme", "roles": ["auditor"]}})
CLOUD = {
    "PLANT_ENV": "cloud",
    "DATABASE_URL": "postgresql://x@h/db",
    "PLANT_IDENTITY_MAP": MAP,
    "PLANT_TOKEN_AUDIENCE": AUDIENCE,
}


def _cfg(**extra: str):
    return load({**CLOUD, **extra})


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def google():
    fake = FakeGoogleCerts()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def verifier(google) -> GoogleTokenVerifier:
    # request=None: google-auth's own requests transport fetches the local endpoint.
    return GoogleTokenVerifier(_cfg(), certs_url=google.url)


def _forwarded(google: FakeGoogleCerts, **claims) -> str:
    """What Cloud Run hands a private function: the token with its signature removed."""
    header, payload, _ = google.token(**claims).split(".")
    return f"{header}.{payload}.SIGNATURE_REMOVED_BY_GOOGLE"


# -- the function verifies the token itself (deployed without IAM) -----------------------


def test_valid_google_token_maps_to_tenant_and_roles(verifier, google):
    principal = verifier.authenticate(_bearer(google.token()))
    assert principal.tenant == "acme" and principal.roles == {"auditor"}
    assert principal.subject == EMAIL
    verifier.authenticate(_bearer(google.token()))
    assert google.fetches == 1  # the certificates are kept, not fetched per request


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
        {"aud": "https://someone-else.a.run.app"},
        {"iss": "https://evil.example"},
        {"iat": int(time.time()) + 3600, "exp": int(time.time()) + 7200},
    ],
    ids=["expired", "wrong-audience", "wrong-issuer", "issued-in-the-future"],
)
def test_bad_google_tokens_are_401(verifier, google, claims):
    with pytest.raises(Unauthenticated):
        verifier.authenticate(_bearer(google.token(**claims)))


def test_unknown_key_id_is_401(verifier, google):
    with pytest.raises(Unauthenticated):
        verifier.authenticate(_bearer(google.token(kid="not-published")))


def test_token_signed_by_another_key_under_a_known_key_id_is_401(verifier, google):
    impostor = FakeGoogleCerts(kid=google.kid)
    with pytest.raises(Unauthenticated):
        verifier.authenticate(_bearer(impostor.token()))


@pytest.mark.parametrize(
    "token",
    ["not-a-jwt", "a.b.c", "SIGNATURE_REMOVED_BY_GOOGLE"],
)
def test_garbage_tokens_are_401(verifier, google, token):
    with pytest.raises(Unauthenticated):
        verifier.authenticate(_bearer(token))


def test_a_forwarded_token_without_signature_does_not_verify(verifier, google):
    with pytest.raises(Unauthenticated):
        verifier.authenticate(_bearer(_forwarded(google)))


def test_unknown_email_is_403_and_unverified_email_is_401(verifier, google):
    with pytest.raises(Forbidden):
        verifier.authenticate(_bearer(google.token(email="someone@else.com")))
    with pytest.raises(Unauthenticated):
        verifier.authenticate(_bearer(google.token(email_verified=False)))


def test_rotated_google_keys_are_fetched_again(verifier, google, monkeypatch):
    verifier.authenticate(_bearer(google.token()))
    google.add_key("test-key-2")  # Google publishes a new key and signs with it
    monkeypatch.setattr(CachedCerts, "MIN_REFETCH_SECONDS", 0)
    assert verifier.authenticate(_bearer(google.token(kid="test-key-2"))).tenant == "acme"
    assert google.fetches == 2


def test_unreachable_certificate_endpoint_is_503_not_401(google):
    verifier = GoogleTokenVerifier(_cfg(), certs_url=google.url)
    token = google.token()
    google.stop()
    with pytest.raises(ServiceUnavailable):
        verifier.authenticate(_bearer(token))


def test_an_injected_request_callable_replaces_the_network(google):
    verifier = GoogleTokenVerifier(_cfg(), request=google, certs_url="http://unused.invalid/")
    assert verifier.authenticate(_bearer(google.token())).tenant == "acme"


# -- the platform verified it (deployed behind IAM) ---------------------------------------


def test_platform_mode_reads_the_forwarded_claims(google):
    identity = PlatformIdentity(_cfg(PLANT_TRUST_PLATFORM_IDENTITY="1"))
    principal = identity.authenticate(_bearer(_forwarded(google)))
    assert principal.tenant == "acme" and principal.subject == EMAIL


def _unsigned(claims: dict, signature: str) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.{signature}"


def test_platform_mode_refuses_tokens_that_did_not_come_through_cloud_run(google):
    identity = PlatformIdentity(_cfg(PLANT_TRUST_PLATFORM_IDENTITY="1"))
    now = int(time.time())
    good = {"iss": "https://accounts.google.com", "email": EMAIL, "email_verified": True}
    refused = [
        google.token(),  # signature not removed by the platform
        _unsigned({**good, "exp": now + 600}, ""),  # alg none
        _forwarded(google, exp=now - 600),
        _forwarded(google, iss="https://evil.example"),
        _forwarded(google, email_verified=False),
        _unsigned({**good, "exp": "never"}, "SIGNATURE_REMOVED_BY_GOOGLE"),
        _unsigned(good, "SIGNATURE_REMOVED_BY_GOOGLE"),  # no exp
        "x.!!!.SIGNATURE_REMOVED_BY_GOOGLE",
    ]
    for token in refused:
        with pytest.raises(Unauthenticated):
            identity.authenticate(_bearer(token))
    with pytest.raises(Forbidden):
        identity.authenticate(_bearer(_forwarded(google, email="stranger@example.com")))


def test_platform_mode_refuses_to_start_unless_explicitly_configured():
    with pytest.raises(ConfigurationError):
        PlatformIdentity(_cfg())  # cloud, but trust not switched on
    with pytest.raises(ConfigurationError):
        PlatformIdentity(load({"PLANT_IDENTITY_MAP": MAP}))  # local
    with pytest.raises(ConfigurationError):
        load({"PLANT_TRUST_PLATFORM_IDENTITY": "1"})  # never on the local path
    assert isinstance(cloud_authenticator(_cfg()), GoogleTokenVerifier)
    assert isinstance(
        cloud_authenticator(_cfg(PLANT_TRUST_PLATFORM_IDENTITY="1")), PlatformIdentity
    )


@pytest.fixture
def process_settings(monkeypatch):
    """The process-wide settings and authenticator, read again from a patched environment."""
    for name in ("DATABASE_URL", "PLANT_ENV", "PLANT_TRUST_PLATFORM_IDENTITY"):
        monkeypatch.delenv(name, raising=False)
    config.settings.cache_clear()
    authenticators.authenticator.cache_clear()
    yield monkeypatch
    config.settings.cache_clear()
    authenticators.authenticator.cache_clear()


def test_the_process_authenticator_follows_the_environment(process_settings, tmp_path):
    for name, value in CLOUD.items():
        process_settings.setenv(name, value)
    process_settings.setenv("PLANT_TRUST_PLATFORM_IDENTITY", "1")
    assert isinstance(authenticators.authenticator(), PlatformIdentity)

    config.settings.cache_clear()
    authenticators.authenticator.cache_clear()
    process_settings.setenv("PLANT_ENV", "local")
    with pytest.raises(ConfigurationError):
        authenticators.authenticator()  # local + trust: refused at start-up, never silently local

    config.settings.cache_clear()
    authenticators.authenticator.cache_clear()
    process_settings.delenv("PLANT_TRUST_PLATFORM_IDENTITY")
    process_settings.setenv("PLANT_DATA_DIR", str(tmp_path))
    local_tokens.ensure_jwt_key(config.settings())
    assert isinstance(authenticators.authenticator(), local_tokens.LocalTokens)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "not json",
        "[]",
        "{}",
        json.dumps({"not-an-email": {"tenant": "acme", "roles": ["auditor"]}}),
        json.dumps({"a@b": ["auditor"]}),
        json.dumps({"a@b": {"tenant": "BAD TENANT", "roles": ["auditor"]}}),
        json.dumps({"a@b": {"tenant": "acme", "roles": ["superuser"]}}),
        json.dumps({"a@b": {"tenant": "acme", "roles": []}}),
    ],
)
def test_malformed_identity_map_stops_start_up(raw):
    for mode in ({}, {"PLANT_TRUST_PLATFORM_IDENTITY": "1"}):
        with pytest.raises(ConfigurationError):
            cloud_authenticator(_cfg(PLANT_IDENTITY_MAP=raw, **mode))
