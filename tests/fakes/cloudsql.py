"""A local Cloud SQL: the Admin API endpoints the connector calls, and the server side of its
TLS tunnel on port 3307, forwarding to the real test PostgreSQL.

- ``GET  /sql/v1beta4/projects/{p}/instances/{i}/connectSettings``: region, the tunnel's IP,
  the server CA certificate, the database version.
- ``POST /sql/v1beta4/projects/{p}/instances/{i}:generateEphemeralCert``: a client
  certificate over the posted public key, signed by the CA, valid for ``cert_lifetime``; the
  posted ``access_token`` (automatic IAM database authentication) is remembered per
  certificate, the way Cloud SQL binds the login to the certificate.
- ``<ip>:3307``: TLS 1.3 with a server certificate from the CA; a client certificate from the
  CA is required; the plaintext is piped to PostgreSQL (a unix socket or TCP).

Both Admin API endpoints require ``Authorization: Bearer <token>``, as Google's do.
The connector hard-codes port 3307, so each fake takes its own loopback address
(127.0.0.2 ... 127.0.0.254, the first free one from a random start).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import random
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

TUNNEL_PORT = 3307  # hard-coded in the connector
PATH = re.compile(
    r"^/sql/v1beta4/projects/([^/]+)/instances/([^/:]+)(/connectSettings|:generateEphemeralCert)$"
)
SSL_REQUEST = b"\x04\xd2\x16\x2f"
PROTOCOL_3 = b"\x00\x03\x00\x00"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class Tunnel:
    """One connection through the tunnel, as the server side saw it."""

    client_cert_subject: str
    access_token: str | None  # the token the presented certificate was issued with
    user: str | None = None  # from the PostgreSQL startup message


@dataclass
class FakeCloudSQL:
    """The fake's state and what it has seen (tests read the counters and lists)."""

    region: str
    target: tuple[str, Any]  # ("unix", path) or ("tcp", (host, port))
    project: str = "proj"
    instance: str = "plant"
    tunnel_ip: str = ""  # set by Running
    ip_types: tuple[str, ...] = ("PRIMARY",)  # "PRIMARY" is public, "PRIVATE" is private
    cert_lifetime: datetime.timedelta = datetime.timedelta(hours=1)
    settings_calls: int = 0
    ephemeral_calls: int = 0
    admin_tokens: list[str] = field(default_factory=list)
    access_tokens: list[str | None] = field(default_factory=list)
    tunnels: list[Tunnel] = field(default_factory=list)
    refused: int = 0  # tunnel handshakes that failed (no or wrong client certificate)
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
        self._tokens_by_serial: dict[int, str | None] = {}

    @property
    def connection_name(self) -> str:
        return f"{self.project}:{self.region}:{self.instance}"

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

    def handle(
        self, method: str, path: str, authorization: str | None, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        match = PATH.match(path)
        if not match or match.group(1, 2) != (self.project, self.instance):
            return 404, {"error": {"code": 404, "message": f"no such instance: {path}"}}
        scheme, _, token = (authorization or "").partition(" ")
        if scheme != "Bearer" or not token:
            return 401, {"error": {"code": 401, "message": "missing bearer token"}}
        self.admin_tokens.append(token)
        if match.group(3) == "/connectSettings" and method == "GET":
            self.settings_calls += 1
            return 200, {
                "kind": "sql#connectSettings",
                "region": self.region,
                "ipAddresses": [{"type": t, "ipAddress": self.tunnel_ip} for t in self.ip_types],
                "serverCaCert": {"cert": _pem(self.ca_cert)},
                "databaseVersion": "POSTGRES_16",
                "backendType": "SECOND_GEN",
            }
        if match.group(3) == ":generateEphemeralCert" and method == "POST":
            self.ephemeral_calls += 1
            request = json.loads(body)
            token = request.get("access_token")
            self.access_tokens.append(token)
            public_key = serialization.load_pem_public_key(request["public_key"].encode())
            cert = self._issue(public_key, "ephemeral", self.cert_lifetime)
            self._tokens_by_serial[cert.serial_number] = token
            return 200, {"ephemeralCert": {"kind": "sql#sslCert", "cert": _pem(cert)}}
        return 405, {"error": {"code": 405, "message": "method not allowed"}}

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
        context.verify_mode = ssl.CERT_REQUIRED  # the handshake fails without a CA-signed cert
        return context

    def _database(self) -> socket.socket:
        kind, where = self.target
        if kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(where)
            return sock
        return socket.create_connection(where)

    def serve_tunnel(self, client: ssl.SSLSocket) -> None:
        der = client.getpeercert(binary_form=True)
        cert = x509.load_der_x509_certificate(der) if der else None
        tunnel = Tunnel(
            client_cert_subject=cert.subject.rfc4514_string() if cert else "",
            access_token=self._tokens_by_serial.get(cert.serial_number) if cert else None,
        )
        self.tunnels.append(tunnel)
        upstream = self._database()
        first = True

        def to_database() -> None:
            nonlocal first
            try:
                while data := client.recv(65536):
                    if first and data[4:8] == PROTOCOL_3:
                        tunnel.user = _startup_user(data)
                        first = False
                    elif first and data[4:8] != SSL_REQUEST:
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


def _startup_user(data: bytes) -> str | None:
    parts = data[8:].split(b"\x00")
    pairs = dict(zip(parts[0::2], parts[1::2], strict=False))
    user = pairs.get(b"user")
    return user.decode() if user is not None else None


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _Api(BaseHTTPRequestHandler):
    fake: FakeCloudSQL

    def _reply(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        status, body = self.fake.handle(
            method,
            self.path.split("?")[0],
            self.headers.get("Authorization"),
            self.rfile.read(length),
        )
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


def _bind_tunnel() -> tuple[socket.socket, str]:
    """A listener on port 3307 of the first free 127.0.0.x (x in 2..254)."""
    hosts = list(range(2, 255))
    start = random.randrange(len(hosts))
    for host in hosts[start:] + hosts[:start]:
        ip = f"127.0.0.{host}"
        listener = socket.socket()
        try:
            listener.bind((ip, TUNNEL_PORT))
        except OSError:
            listener.close()
            continue
        listener.listen()
        return listener, ip
    raise RuntimeError(f"no free 127.0.0.x:{TUNNEL_PORT} for the fake Cloud SQL tunnel")


class Running:
    """The Admin API (127.0.0.1, a free port) and the tunnel, running until ``stop``."""

    def __init__(self, fake: FakeCloudSQL) -> None:
        self.fake = fake
        self.listener, fake.tunnel_ip = _bind_tunnel()
        handler = type("Handler", (_Api,), {"fake": fake})
        self.api = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        fake.api_url = f"http://127.0.0.1:{self.api.server_address[1]}"
        self._dir = tempfile.TemporaryDirectory()
        self.context = fake.tls_context(Path(self._dir.name))
        self._open: set[socket.socket] = set()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self.api.serve_forever, args=(0.05,), daemon=True),
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
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(5)  # for the handshake; the pipe itself blocks
        try:
            tls = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            self.fake.refused += 1
            raw.close()
            return
        tls.settimeout(None)
        self._open.add(tls)
        try:
            self.fake.serve_tunnel(tls)
        finally:
            self._open.discard(tls)

    def stop(self) -> None:
        self._stopping = True
        self.api.shutdown()
        self.api.server_close()
        _shutdown(self.listener)
        self.listener.close()
        for sock in list(self._open):
            _shutdown(sock)
        for t in self._threads:
            t.join(timeout=5)
        self._dir.cleanup()

    def __enter__(self) -> FakeCloudSQL:
        return self.fake

    def __exit__(self, *exc: object) -> None:
        self.stop()
