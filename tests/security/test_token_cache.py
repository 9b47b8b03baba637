"""A verified token is kept so its next uses skip the signature check; the keeping must never
let through what a full verification refuses: a kept token's bytes with one signature byte
flipped or its claims rewritten, a kept token past its expiry, or a token at the edges of its
time claims."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from shared.errors import Unauthenticated
from shared.security import token_cache
from shared.security.local_tokens import LEEWAY_SECONDS, LocalTokens
from shared.security.principal import Principal
from shared.security.token_cache import TokenCache, Verified
from tests.support.forged_tokens import AUDIENCE, ISSUER, b64, server_key, valid_claims
from tests.support.reliability_table import record


def _unb64(text_: str) -> bytes:
    return base64.urlsafe_b64decode(text_ + "=" * (-len(text_) % 4))


@pytest.fixture
def client(database_url):
    import functions_framework

    from shared.config import ROOT

    return functions_framework.create_app(
        target="registry", source=str(ROOT / "main.py")
    ).test_client()


def _post(client, token: str, name: str = "cached"):
    body = {"name": name, "description": "d", "category": "technical"}
    return client.post("/registry/skills", json=body, headers={"Authorization": f"Bearer {token}"})


def _written(superuser, tenant: str) -> int:
    with superuser.connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM log_entries WHERE tenant_id = :t"), {"t": tenant}
        ).scalar_one()


def test_a_kept_token_with_one_signature_byte_flipped_gets_401(client, tenant, superuser, request):
    record(
        request.node,
        "auth: kept token, one signature byte flipped",
        64,
        "401 problem+json each time, nothing written",
    )
    token = jwt.encode(valid_claims(tenant, int(time.time())), server_key(), algorithm="EdDSA")
    assert _post(client, token).status_code == 201  # now kept
    head, payload, sig = token.split(".")
    signature = _unb64(sig)
    for i in range(len(signature)):
        flipped = bytearray(signature)
        flipped[i] ^= 0x01
        forged = f"{head}.{payload}.{b64(bytes(flipped))}"
        response = _post(client, forged)
        assert response.status_code == 401, i
        assert response.mimetype == "application/problem+json"
    assert _post(client, token, "again").status_code == 201  # the real one still works
    assert _written(superuser, tenant) == 2


def test_a_kept_tokens_signature_on_rewritten_claims_gets_401(client, tenant, superuser):
    token = jwt.encode(valid_claims(tenant, int(time.time())), server_key(), algorithm="EdDSA")
    assert _post(client, token).status_code == 201
    head, _, sig = token.split(".")
    for over in ({"tenant": tenant + "-x"}, {"roles": ["admin"]}, {"exp": int(time.time()) + 9e5}):
        claims = {**valid_claims(tenant, int(time.time())), **over}
        forged = f"{head}.{b64(json.dumps(claims).encode())}.{sig}"
        assert _post(client, forged).status_code == 401, over
    assert _written(superuser, tenant) == 1
    assert _written(superuser, tenant + "-x") == 0


def test_a_kept_token_past_its_expiry_gets_401(client, tenant, superuser, request):
    record(
        request.node,
        "auth: kept token used past its expiry",
        1,
        "401 token expired once exp + leeway passed, nothing written",
    )
    now = int(time.time())
    # Expired 2 s ago, still inside the 5 s leeway for about 3 s more.
    exp = now - 2
    token = jwt.encode(valid_claims(tenant, now - 60, exp=exp), server_key(), algorithm="EdDSA")
    assert _post(client, token).status_code == 201  # now kept
    time.sleep(max(0.0, exp + LEEWAY_SECONDS + 0.05 - time.time()))
    response = _post(client, token)
    assert response.status_code == 401
    assert response.json["detail"] == "token expired"
    assert _written(superuser, tenant) == 1


class _Clock:
    """One fake 'now' for both the cache and PyJWT."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = time.time()
        clock = self

        class FrozenDatetime(datetime):
            @classmethod
            def now(cls, tz=None):  # type: ignore[override]
                return datetime.fromtimestamp(clock.now, tz or UTC)

        monkeypatch.setattr(jwt.api_jwt, "datetime", FrozenDatetime)
        monkeypatch.setattr(token_cache.time, "time", lambda: clock.now)


def _outcome(tokens: LocalTokens, token: str) -> str:
    try:
        return tokens.authenticate({"Authorization": f"Bearer {token}"}).tenant
    except Unauthenticated as exc:
        return exc.detail


EDGES = [-LEEWAY_SECONDS - 1, -LEEWAY_SECONDS - 0.001, -LEEWAY_SECONDS, -1, 0]
EDGES += [1, LEEWAY_SECONDS - 0.001, LEEWAY_SECONDS, LEEWAY_SECONDS + 0.001, 60]


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("offset", EDGES)
def test_a_kept_token_passes_exactly_when_a_full_verification_would(monkeypatch, claim, offset):
    """At each instant around the edges of exp, nbf and iat (leeway included), a token kept
    while it was valid gets the same answer as a verifier that never saw it."""
    clock = _Clock(monkeypatch)
    key = Ed25519PrivateKey.generate()
    base = int(clock.now)
    claims = valid_claims("acme", base - 3600, exp=base + 3600)
    claims[claim] = base
    token = jwt.encode(claims, key, algorithm="EdDSA")
    keeping = LocalTokens(key, ISSUER, AUDIENCE)
    # Kept at an instant inside the window (past nbf/iat, before exp).
    clock.now = base + (-60 if claim == "exp" else 60)
    assert _outcome(keeping, token) == "acme"
    clock.now = base + offset
    assert _outcome(keeping, token) == _outcome(LocalTokens(key, ISSUER, AUDIENCE), token)


def test_a_verified_token_is_not_verified_again(monkeypatch):
    key = Ed25519PrivateKey.generate()
    tokens = LocalTokens(key, ISSUER, AUDIENCE)
    token = tokens.issue("alice", "acme", ["reader"])
    calls = []
    real = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: calls.append(1) or real(*a, **k))
    for _ in range(3):
        assert _outcome(tokens, token) == "acme"
    assert len(calls) == 1


def test_a_refused_token_is_not_kept(monkeypatch):
    key = Ed25519PrivateKey.generate()
    tokens = LocalTokens(key, ISSUER, "someone-else")
    token = LocalTokens(key, ISSUER, AUDIENCE).issue("alice", "acme", ["reader"])
    for _ in range(2):
        assert _outcome(tokens, token) == "token audience is wrong"


def test_the_cache_holds_at_most_its_size_dropping_the_oldest():
    cache = TokenCache(size=3)
    principal = Principal("alice", "acme", frozenset({"reader"}))
    now = int(time.time())
    keys = [cache.key(f"token-{i}") for i in range(5)]
    for key in keys:
        cache.put(key, Verified(principal, now, now + 60))
    assert [cache.get(key) for key in keys] == [None, None, principal, principal, principal]
