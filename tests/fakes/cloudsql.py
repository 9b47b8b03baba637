"""A local Cloud SQL: the Admin API endpoints the connector calls, and the server side of its
TLS tunnel on port 3307, forwarding to the real test PostgreSQL.

- ``GET  /sql/v1beta4/projects/{p}/instances/{i}/connectSettings``: region, the tunnel's IP,
  the server CA certificate, the database version.
- ``POST /sql/v1beta4/projects/{p}/instances/{i}:generateEphemeralCert``: a client
  certificate over the posted public key, signed by the CA, valid for ``cert_lifetime``.
- ``<ip>:3307``: TLS 1.3 with a server certificate from the CA; a client certificate from the
  CA is required; the plaintext is piped to PostgreSQL (a unix socket or TCP).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import re
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

PATH = re.compile(
    r"^/sql/v1beta4/projects/([^/]+)/instances/([^/:]+)(/connectSettings|:generateEphemeralCert)$"
)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class FakeCloudSQL:
    region: str
    tunnel_ip: str
    target: tuple[str, Any]  # ("unix", path) or ("tcp", (host, port))
    cert_lifetime: datetime.timedelta = datetime.timedelta(hours=1)
    ephemeral_calls: int = 0
    settings_calls: int = 0
    access_tokens: list[str] = field(default_factory=list)
    startup_users: list[str] = field(default_factory=list)
    client_cert_subjects: list[str] = field(default_factory=list)
    api_url: str = ""

    def __post_init__(self) -> None:
        self.ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(_name("Fake Cloud SQL CA"))
            .issuer_name(_name("Fake Cloud SQL CA"))
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(minutes=5))
            .not_valid_after(_now() + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )

    def _issue(
        self, public_key: Any, common: str, lifetime: datetime.timedelta, ip: str | None = None
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common))
            .issuer_name(self.ca_cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(minutes=1))
            .not_valid_after(_now() + lifetime)
        )
        if ip:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                critical=False,
            )
        return builder.sign(self.ca_key, hashes.SHA256())

    # -- Admin API ---------------------------------------------------------------------

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        match = PATH.match(path)
        if not match:
            return 404, {"error": {"message": f"no such endpoint {path}"}}
        if match.group(3) == "/connectSettings" and method == "GET":
            self.settings_calls += 1
            return 200, {
                "kind": "sql#connectSettings",
                "region": self.region,
                "ipAddresses": [{"type": "PRIMARY", "ipAddress": self.tunnel_ip}],
                "serverCaCert": {"cert": _pem(self.ca_cert)},
                "databaseVersion": "POSTGRES_16",
                "backendType": "SECOND_GEN",
            }
        if match.group(3) == ":generateEphemeralCert" and method == "POST":
            self.ephemeral_calls += 1
            request = json.loads(body)
            self.access_tokens.append(request.get("access_token", ""))
            public_key = serialization.load_pem_public_key(request["public_key"].encode())
            cert = self._issue(public_key, "ephemeral", self.cert_lifetime)
            return 200, {"ephemeralCert": {"kind": "sql#sslCert", "cert": _pem(cert)}}
        return 405, {"error": {"message": "method not allowed"}}

    # -- the tunnel ----------------------------------------------------------------------

    def tls_context(self, workdir: Path) -> ssl.SSLContext:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = self._issue(
            key.public_key(), "fake-instance", datetime.timedelta(days=1), ip=self.tunnel_ip
        )
        (workdir / "server.pem").write_text(_pem(cert))
        (workdir / "server.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (workdir / "ca.pem").write_text(_pem(self.ca_cert))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_cert_chain(workdir / "server.pem", workdir / "server.key")
        context.load_verify_locations(workdir / "ca.pem")
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    def _database(self) -> socket.socket:
        kind, where = self.target
        if kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(where)
            return sock
        return socket.create_connection(where)

    def serve_tunnel(self, client: ssl.SSLSocket) -> None:
        peer = client.getpeercert() or {}
        self.client_cert_subjects.append(str(peer.get("subject")))
        upstream = self._database()
        first = True

        def to_database() -> None:
            nonlocal first
            try:
                while data := client.recv(65536):
                    if first and len(data) > 8 and data[4:8] == b"\x00\x03\x00\x00":
                        self._note_startup(data)
                        first = False
                    elif first and data[4:8] != b"\x04\xd2\x16\x2f":  # not an SSLRequest
                        first = False
                    upstream.sendall(data)
            except OSError:
                pass
            finally:
                _shutdown(upstream)

        thread = threading.Thread(target=to_database, daemon=True)
        thread.start()
        try:
            while data := upstream.recv(65536):
                client.sendall(data)
        except OSError:
            pass
        finally:
            _shutdown(client)
            thread.join(timeout=5)
            upstream.close()
            client.close()

    def _note_startup(self, data: bytes) -> None:
        parts = data[8:].split(b"\x00")
        pairs = dict(zip(parts[0::2], parts[1::2], strict=False))
        self.startup_users.append(pairs.get(b"user", b"").decode())


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _Api(BaseHTTPRequestHandler):
    fake: FakeCloudSQL

    def _reply(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        status, body = self.fake.handle(method, self.path.split("?")[0], self.rfile.read(length))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._reply("GET")

    def do_POST(self) -> None:
        self._reply("POST")

    def log_message(self, *args: Any) -> None:
        pass


class Running:
    """The Admin API and the tunnel, running on loopback until ``stop``."""

    def __init__(self, fake: FakeCloudSQL) -> None:
        self.fake = fake
        handler = type("Handler", (_Api,), {"fake": fake})
        self.api = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        fake.api_url = f"http://127.0.0.1:{self.api.server_address[1]}"
        self._dir = tempfile.TemporaryDirectory()
        self.context = fake.tls_context(Path(self._dir.name))
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((fake.tunnel_ip, 3307))
        self.listener.listen()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self.api.serve_forever, daemon=True),
            threading.Thread(target=self._accept, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _accept(self) -> None:
        while not self._stopping:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            try:
                tls = self.context.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                raw.close()
                continue
            threading.Thread(target=self.fake.serve_tunnel, args=(tls,), daemon=True).start()

    def stop(self) -> None:
        self._stopping = True
        self.api.shutdown()
        self.listener.close()
        self._dir.cleanup()
