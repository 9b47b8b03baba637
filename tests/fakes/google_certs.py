"""Google's ID-token certificate endpoint, faked: RSA keys the test makes, published as
``{key id: certificate PEM}`` over HTTP on 127.0.0.1 (what www.googleapis.com/oauth2/v1/certs
serves), plus a signer for Google-shaped ID tokens.

google-auth fetches it with its real transport; the fake is also a google-auth request
callable itself, for tests that want no socket.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

AUDIENCE = "https://audit-abc-uc.a.run.app"
EMAIL = "scheduler@proj.iam.gserviceaccount.com"


def _key_and_cert() -> tuple[bytes, str]:
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
    return pem, cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class Response:
    """The shape of a google.auth.transport.Response."""

    status: int
    data: bytes
    headers: dict[str, str] = field(default_factory=dict)


class FakeGoogleCerts:
    """Signing keys under key ids, of which ``published`` are served; ``fetches`` counts
    certificate requests."""

    def __init__(self, kid: str = "test-key-1", max_age: int = 3600) -> None:
        self.keys: dict[str, tuple[bytes, str]] = {}  # kid -> (private key PEM, cert PEM)
        self.published: set[str] = set()
        self.kid = kid
        self.max_age = max_age
        self.fetches = 0
        self.url = ""
        self._server: ThreadingHTTPServer | None = None
        self.add_key(kid)

    def add_key(self, kid: str, publish: bool = True) -> None:
        self.keys[kid] = _key_and_cert()
        if publish:
            self.published.add(kid)

    def document(self) -> Response:
        self.fetches += 1
        body = json.dumps({kid: self.keys[kid][1] for kid in sorted(self.published)}).encode()
        headers = {
            "content-type": "application/json",
            "cache-control": f"public, max-age={self.max_age}",
        }
        return Response(200, body, headers)

    def __call__(self, url: str, method: str = "GET", **_: Any) -> Response:
        return self.document()

    def token(self, kid: str | None = None, **overrides: Any) -> str:
        """A Google-shaped ID token signed with key ``kid``; ``overrides`` replace claims."""
        now = int(time.time())
        claims = {
            "iss": "https://accounts.google.com",
            "aud": AUDIENCE,
            "azp": "1234567890",
            "sub": "1234567890",
            "email": EMAIL,
            "email_verified": True,
            "iat": now,
            "exp": now + 600,
        }
        claims.update(overrides)
        kid = kid or self.kid
        if kid not in self.keys:
            self.add_key(kid, publish=False)  # a real signature under a key id nobody serves
        signer = crypt.RSASigner.from_string(self.keys[kid][0], kid)
        return jwt.encode(signer, claims).decode()

    # -- the HTTP endpoint ------------------------------------------------------------

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                response = fake.document()
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.data)))
                self.end_headers()
                self.wfile.write(response.data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/oauth2/v1/certs"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
