"""Google identities, offline: real google-auth verification against locally made keys, and
the trust-the-platform mode that only exists when explicitly configured."""

from __future__ import annotations

import json
import time

import pytest
from fakes.google_certs import FakeGoogleCerts

from shared.config import load
from shared.errors import ConfigurationError, Forbidden, Unauthenticated
from shared.identity import GoogleTokenVerifier, PlatformIdentity, cloud_authenticator

AUDIENCE = "https://audit-abc-uc.a.run.app"
MAP = json.dumps(
    {"scheduler@proj.iam.gserviceaccount.com": {"tenant": "acme", "roles": ["auditor"]}}
)


def _cfg(**extra: str):
    env = {
        "PLANT_ENV": "cloud",
        "DATABASE_URL": "postgresql://x@h/db",
        "PLANT_IDENTITY_MAP": MAP,
        "PLANT_TOKEN_AUDIENCE": AUDIENCE,
        **extra,
    }
    return load(env)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def google() -> FakeGoogleCerts:
    return FakeGoogleCerts()


@pytest.fixture
def verifier(google) -> GoogleTokenVerifier:
    return GoogleTokenVerifier(_cfg(), request=google, certs_url="http://127.0.0.1/certs")


def test_valid_google_token_maps_to_tenant_and_roles(verifier, google):
    principal = verifier.authenticate(_bearer(google.token()))
    assert principal.tenant == "acme" and principal.roles == {"auditor"}
    assert principal.subject == "scheduler@proj.iam.gserviceaccount.com"
    assert google.fetches == 1


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
        {"aud": "https://someone-else.a.run.app"},
        {"iss": "https://evil.example"},
    ],
    ids=["expired", "wrong-audience", "wrong-issuer"],
)
def test_bad_google_tokens_are_401(verifier, google, claims):
    with pytest.raises(Unauthenticated):
        verifier.authenticate(_bearer(google.token(**claims)))


def test_unknown_key_id_is_401(verifier, google):
    with pytest.raises(Unauthenticated):
        verifier.authenticate(_bearer(google.token(kid="not-published")))


def test_token_signed_by_another_key_with_a_known_kid_is_401(verifier, google):
    impostor = FakeGoogleCerts(kid=google.kid)
    with pytest.raises(Unauthenticated):
        verifier.authenticate(_bearer(impostor.token()))


def test_unknown_or_unverified_email(verifier, google):
    with pytest.raises(Forbidden):
        verifier.authenticate(_bearer(google.token(email="someone@else.com")))
    with pytest.raises(Unauthenticated):
        verifier.authenticate(_bearer(google.token(email_verified=False)))


def _forwarded(google: FakeGoogleCerts, **claims) -> str:
    header, payload, _ = google.token(**claims).split(".")
    return f"{header}.{payload}.SIGNATURE_REMOVED_BY_GOOGLE"


def test_platform_mode_reads_the_forwarded_claims(google):
    identity = PlatformIdentity(_cfg(PLANT_TRUST_PLATFORM_IDENTITY="1"))
    principal = identity.authenticate(_bearer(_forwarded(google)))
    assert principal.tenant == "acme"


def test_platform_mode_refuses_tokens_that_did_not_come_through_cloud_run(google):
    identity = PlatformIdentity(_cfg(PLANT_TRUST_PLATFORM_IDENTITY="1"))
    with pytest.raises(Unauthenticated):
        identity.authenticate(_bearer(google.token()))  # signature not removed by the platform
    with pytest.raises(Unauthenticated):
        identity.authenticate(_bearer(_forwarded(google, exp=int(time.time()) - 600)))
    with pytest.raises(Unauthenticated):
        identity.authenticate(_bearer(_forwarded(google, iss="https://evil.example")))


def test_platform_mode_refuses_to_start_unless_explicitly_configured():
    with pytest.raises(ConfigurationError):
        PlatformIdentity(_cfg())
    with pytest.raises(ConfigurationError):
        load({"PLANT_TRUST_PLATFORM_IDENTITY": "1"})  # never on the local path
    assert isinstance(cloud_authenticator(_cfg()), GoogleTokenVerifier)
    assert isinstance(
        cloud_authenticator(_cfg(PLANT_TRUST_PLATFORM_IDENTITY="1")), PlatformIdentity
    )


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "not json",
        "[]",
        json.dumps({"a@b": {"tenant": "BAD", "roles": ["auditor"]}}),
        json.dumps({"a@b": {"tenant": "acme", "roles": ["superuser"]}}),
    ],
)
def test_malformed_identity_map_stops_start_up(raw):
    with pytest.raises(ConfigurationError):
        GoogleTokenVerifier(_cfg(PLANT_IDENTITY_MAP=raw) if raw else _cfg(PLANT_IDENTITY_MAP=""))
