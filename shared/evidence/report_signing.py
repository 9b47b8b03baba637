"""The report-signing key: a PAdES signature on every PDF report and a detached DSSE envelope
for every JSON and CSV report, so that a forwarded copy still proves where it came from.

Kept like the log's keyring (shared/keys.py), one JSON document, never logged::

    {"name": "<key name>", "seed": "<base64 32-byte Ed25519 seed>",
     "certificate": "<PEM, self-signed X.509 of that key>", "created_at": "..."}

Locally a file under .data/keys (``report-signing.json``, mode 0600) that the local bootstrap
creates; in the cloud the Secret Manager secret PLANT_REPORT_SIGNING_SECRET names. The
certificate and the DSSE vkey are public: ``GET /export/report/certificate`` serves them.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from shared.config import Settings, settings
from shared.errors import ConfigurationError
from shared.integrity import dsse
from shared.integrity.note import Signer, Verifier

# DSSE payload type of a report's detached envelope (docs/formats.md, "Signed reports").
PAYLOAD_TYPE = "application/vnd.plant.report-digest+json"


@dataclass(frozen=True)
class ReportKey:
    name: str
    seed: bytes
    certificate_pem: bytes

    @property
    def signer(self) -> Signer:
        return Signer.from_seed(self.name, self.seed)

    @property
    def private_key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    def public(self) -> dict[str, str]:
        """What anyone may have: the certificate (PEM), its SHA-256, the DSSE vkey and key id."""
        der = x509.load_pem_x509_certificate(self.certificate_pem).public_bytes(
            serialization.Encoding.DER
        )
        return {
            "certificate": self.certificate_pem.decode(),
            "certificate_sha256": hashlib.sha256(der).hexdigest(),
            "vkey": self.signer.vkey,
            "key_id": self.signer.key_id_hex,
        }


def _certificate(name: str, key: Ed25519PrivateKey) -> bytes:
    """A self-signed certificate of ``key`` (valid 20 years): the trust root a PDF reader or
    pyHanko's validator is given."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Plant registry"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"report signing {name}"),
        ]
    )
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=20 * 365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, None)
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def new_document(name: str) -> dict[str, Any]:
    """A fresh report-signing key document (a new seed and its certificate)."""
    import os

    from shared.integrity.canonical import now_text

    seed = os.urandom(32)
    pem = _certificate(name, Ed25519PrivateKey.from_private_bytes(seed))
    return {
        "name": name,
        "seed": base64.b64encode(seed).decode(),
        "certificate": pem.decode(),
        "created_at": now_text(),
    }


def parse(document: bytes) -> ReportKey:
    """The key a document holds; the message never includes key material."""
    try:
        data = json.loads(document)
        key = ReportKey(
            data["name"],
            base64.b64decode(data["seed"], validate=True),
            data["certificate"].encode(),
        )
        cert = x509.load_pem_x509_certificate(key.certificate_pem)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigurationError("the report-signing key document is malformed") from exc
    if len(key.seed) != 32:
        raise ConfigurationError("the report-signing key's seed must be 32 bytes")
    mine = key.private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    theirs = cert.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    if mine != theirs:
        raise ConfigurationError("the report-signing certificate is not of the report key")
    return key


def key_file(cfg: Settings) -> Path:
    return cfg.keys_dir / "report-signing.json"


def ensure_local(cfg: Settings) -> Path:
    """Create the development report-signing key if there is none (the local bootstrap)."""
    from shared.tlog.keys import write_private

    path = key_file(cfg)
    if not path.exists():
        write_private(path, new_document(cfg.log_origin_prefix.rstrip("/") + "/report"))
    return path


def load(cfg: Settings) -> ReportKey:
    """Read the key from its secret (cloud) or file (local)."""
    if cfg.is_cloud:
        if not cfg.report_signing_secret:
            raise ConfigurationError("PLANT_REPORT_SIGNING_SECRET is not set")
        from shared.security.secrets import secret_manager  # cloud path only

        return parse(secret_manager().get(cfg.report_signing_secret))
    try:
        return parse(key_file(cfg).read_bytes())
    except OSError as exc:
        raise ConfigurationError(
            f"no report-signing key at {key_file(cfg)} (run make run once)"
        ) from exc


_lock = threading.Lock()
_key: ReportKey | None = None


def report_key() -> ReportKey:
    """The process's report-signing key, read on first use."""
    global _key
    with _lock:
        if _key is None:
            _key = load(settings())
        return _key


def reset() -> None:
    """Forget the process's key (the next use reads it again)."""
    global _key
    with _lock:
        _key = None


def sign_pdf(pdf: bytes, key: ReportKey | None = None) -> bytes:
    """``pdf`` with a PAdES B-B signature appended as an incremental update.

    The signature (CMS, SHA-512 over Ed25519) covers every byte of the signed file except the
    hex of the signature value itself: the /ByteRange pair of ranges around /Contents."""
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    key = key or report_key()
    der_key = key.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert = asn1_x509.Certificate.load(
        x509.load_pem_x509_certificate(key.certificate_pem).public_bytes(serialization.Encoding.DER)
    )
    signer = signers.SimpleSigner(
        signing_cert=cert,
        signing_key=asn1_keys.PrivateKeyInfo.load(der_key),
        cert_registry=SimpleCertificateStore(),  # self-signed: no chain to carry
    )
    meta = signers.PdfSignatureMetadata(
        field_name="PlantReportSignature",
        md_algorithm="sha512",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason="Plant registry compliance report",
        name=f"report signing {key.name}",
    )
    out = io.BytesIO()
    signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), meta, signer=signer, output=out)
    return out.getvalue()


def digest_statement(data_sha256: str, size: int, fmt: str, head: dict[str, Any]) -> bytes:
    """The payload a report's envelope signs: canonical JSON naming the report's bytes (their
    SHA-256 in hex and their length), its format, tenant, checkpoint and generation time."""
    from shared.integrity import canonical

    checkpoint = head.get("checkpoint") or {}
    return canonical.dumps(
        {
            "format": fmt,
            "sha256": data_sha256,
            "size": size,
            "tenant": head["tenant"],
            "generated_at": head["generated_at"],
            "checkpoint": {"size": checkpoint.get("size"), "root": checkpoint.get("root")},
        }
    )


def envelope(data_sha256: str, size: int, fmt: str, head: dict[str, Any]) -> dict[str, Any]:
    """The detached DSSE envelope of a report whose bytes hash to ``data_sha256``."""
    payload = digest_statement(data_sha256, size, fmt, head)
    return dsse.sign_envelope(PAYLOAD_TYPE, payload, report_key().signer)


class ReportNotVerified(Exception):
    """The report does not match its envelope, or the envelope does not verify."""


def verify_detached(data: bytes, envelope_doc: Any, vkeys: list[str]) -> dict[str, Any]:
    """Check that ``envelope_doc`` was signed by one of ``vkeys`` and names exactly ``data``
    (its SHA-256 and length); return the signed statement, or raise ReportNotVerified."""
    try:
        verifiers = {v.key_id_hex: v for v in (Verifier.from_vkey(k) for k in vkeys)}
    except ValueError as exc:
        raise ReportNotVerified(f"a --key is not a vkey: {exc}") from exc
    try:
        payload = dsse.verify_envelope(envelope_doc, verifiers)
    except dsse.EnvelopeError as exc:
        raise ReportNotVerified(f"envelope: {exc}") from exc
    if envelope_doc["payloadType"] != PAYLOAD_TYPE:
        raise ReportNotVerified(f"envelope: the payload type is not {PAYLOAD_TYPE}")
    try:
        statement = json.loads(payload)
        wanted, size = statement["sha256"], statement["size"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ReportNotVerified("envelope: the signed statement is malformed") from exc
    if size != len(data):
        raise ReportNotVerified(f"file: {len(data)} bytes, the envelope signs {size}")
    if hashlib.sha256(data).hexdigest() != wanted:
        raise ReportNotVerified("file: its SHA-256 differs from the one the envelope signs")
    return statement
