"""Google's ID-token certificates, faked: keys the test makes, served the way google-auth
fetches them (a request callable answering {key id: certificate PEM})."""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt


def _key_and_cert() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-google-certs")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Response:
    status: int
    data: bytes
    headers: dict[str, str] = field(default_factory=dict)


class FakeGoogleCerts:
    """A signing key published under ``kid``, and a request callable serving it."""

    def __init__(self, kid: str = "test-key-1") -> None:
        self.kid = kid
        self.private_pem, self.cert_pem = _key_and_cert()
        self.fetches = 0

    def __call__(self, url: str, method: str = "GET", **_: Any) -> Response:
        self.fetches += 1
        return Response(200, json.dumps({self.kid: self.cert_pem.decode()}).encode())

    def token(self, kid: str | None = None, **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": "https://accounts.google.com",
            "aud": "https://audit-abc-uc.a.run.app",
            "sub": "1234567890",
            "email": "scheduler@proj.iam.gserviceaccount.com",
            "email_verified": True,
            "iat": now,
            "exp": now + 600,
        }
        claims.update(overrides)
        signer = crypt.RSASigner.from_string(self.private_pem, kid or self.kid)
        return jwt.encode(signer, claims).decode()
