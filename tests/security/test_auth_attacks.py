"""Forged, stale, misdirected or over-reaching tokens: each gets its exact 401/403, and nothing
is written."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from tests.support.forged_tokens import b64, server_key, valid_claims
from tests.support.reliability_table import record

BODY = {"name": "attack", "description": "d", "category": "technical"}


def _signed(claims: dict, headers: dict | None = None) -> str:
    return jwt.encode(claims, server_key(), algorithm="EdDSA", headers=headers)


def _public_pem() -> bytes:
    return (
        server_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _attacks(tenant: str) -> dict[str, str]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    good = _signed(valid_claims(tenant))
    head, _payload, sig = good.split(".")
    import hashlib
    import hmac

    hs_header = b64({"alg": "HS256", "typ": "JWT"})
    hs_payload = b64(valid_claims(tenant))
    hs_sig = hmac.new(_public_pem(), f"{hs_header}.{hs_payload}".encode(), hashlib.sha256).digest()
    return {
        "malformed": "not.a.jwt",
        "alg-none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(valid_claims(tenant))}.",
        "hs256-with-public-key": f"{hs_header}.{hs_payload}.{b64(hs_sig)}",
        "rs256-other-key": jwt.encode(valid_claims(tenant), rsa_key, algorithm="RS256"),
        "expired": _signed(valid_claims(tenant, iat=now - 7200, nbf=now - 7200, exp=now - 3600)),
        "not-yet-valid": _signed(valid_claims(tenant, nbf=now + 3600, exp=now + 7200)),
        "wrong-audience": _signed(valid_claims(tenant, aud="someone-else")),
        "wrong-issuer": _signed(valid_claims(tenant, iss="evil")),
        "unknown-key": jwt.encode(
            valid_claims(tenant), Ed25519PrivateKey.generate(), algorithm="EdDSA"
        ),
        "tampered-tenant": f"{head}.{b64(valid_claims(tenant + '-x'))}.{sig}",
        "tampered-roles": f"{head}.{b64(valid_claims(tenant, roles=['admin']))}.{sig}",
        "no-tenant": _signed({k: v for k, v in valid_claims(tenant).items() if k != "tenant"}),
        "bogus-role": _signed(valid_claims(tenant, roles=["root"])),
    }


@pytest.fixture
def client(database_url):
    import functions_framework

    from shared.config import ROOT

    return functions_framework.create_app(
        target="registry", source=str(ROOT / "main.py")
    ).test_client()


ATTACKS = [
    "malformed",
    "alg-none",
    "hs256-with-public-key",
    "rs256-other-key",
    "expired",
    "not-yet-valid",
    "wrong-audience",
    "wrong-issuer",
    "unknown-key",
    "tampered-tenant",
    "tampered-roles",
    "no-tenant",
    "bogus-role",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_each_forged_or_invalid_token_gets_401_and_writes_nothing(
    client, tenant, superuser, attack, request
):
    record(request.node, f"auth: {attack} token", 1, "401 problem+json, nothing written")
    token = _attacks(tenant)[attack]
    response = client.post(
        "/registry/skills", json=BODY, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401, attack
    assert response.mimetype == "application/problem+json"
    assert token not in response.get_data(as_text=True)
    with superuser.connect() as conn:
        written = conn.execute(
            text("SELECT count(*) FROM log_entries WHERE tenant_id IN (:a, :b)"),
            {"a": tenant, "b": tenant + "-x"},
        ).scalar_one()
    assert written == 0


def test_valid_token_without_the_role_gets_403_and_writes_nothing(
    client, tenant, superuser, make_token, request
):
    record(request.node, "auth: valid token without the author role", 3, "403, nothing written")
    for roles in (("reader",), ("certifier",), ("auditor",)):
        token = make_token(tenant, *roles)
        response = client.post(
            "/registry/skills", json=BODY, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 403
    with superuser.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM log_entries WHERE tenant_id = :t"), {"t": tenant}
            ).scalar_one()
            == 0
        )


def test_the_control_token_does_work(client, tenant):
    token = _signed(valid_claims(tenant))
    response = client.post(
        "/registry/skills", json=BODY, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 201
