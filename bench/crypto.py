"""Signatures: a checkpoint (C2SP signed note, Ed25519) and a certificate (DSSE envelope over
an in-toto statement, Ed25519: sign, and verify as an auditor does) against RSA-4096 PSS over
the same bytes, what the original system used per amendment."""

from __future__ import annotations

import time
from typing import Any

from bench import common


def _rsa() -> tuple[Any, Any, Any]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)
    return key, pss, hashes.SHA256()


def _loop(fn: Any, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        fn()
    return time.perf_counter() - started


def bench_checkpoint(count: int) -> dict[str, Any]:
    from shared.integrity import note

    signer = note.Signer.from_seed("bench/log", b"\x01" * 32)
    body = note.checkpoint_body("bench/log/t", 123456, b"\x02" * 32)
    key, pss, sha = _rsa()
    message = body.encode()
    return common.result(
        "sign a checkpoint: Ed25519 signed note vs RSA-4096 PSS",
        common.side(
            common.repeat(lambda: _loop(lambda: note.sign_note(body, [signer]), count)),
            count,
            "signatures/s",
            "Ed25519 note",
        ),
        common.side(
            common.repeat(lambda: _loop(lambda: key.sign(message, pss, sha), count)),
            count,
            "signatures/s",
            "RSA-4096 PSS",
        ),
        operations=count,
    )


def _statement() -> bytes:
    """A certificate's statement as certification.py builds it (ten passing checks)."""
    from shared.integrity import canonical
    from shared.registry import attestation

    checks = [
        {"check": f"CERT-{i:02d}", "result": "pass", "message": "holds", "description": "x" * 60}
        for i in range(10)
    ]
    return canonical.dumps(
        {
            "_type": attestation.STATEMENT_TYPE,
            "subject": [{"name": "acme/skills/0b0f@v3", "digest": {"sha256": "ab" * 32}}],
            "predicateType": attestation.PREDICATE_TYPE,
            "predicate": {
                "tenant": "acme",
                "entity_type": "skill",
                "entity_id": "0b0f5c1e-2f7a-4b7e-9a43-1f1f6e2d7c10",
                "version": 3,
                "log_index": 123456,
                "checkpoint": {"size": 123457, "root": "A" * 44},
                "certifier": "carol",
                "certified_at": "2026-01-01T00:00:00.000Z",
                "rule_catalogue_version": "1",
                "checks": checks,
                "result": "pass",
            },
        }
    )


def bench_certificates(count: int) -> list[dict[str, Any]]:
    from shared.integrity import dsse, note
    from shared.registry import attestation

    signer = note.Signer.from_seed("bench/log", b"\x01" * 32)
    verifiers = {signer.key_id_hex: signer.verifier}
    payload = _statement()
    kind = attestation.PAYLOAD_TYPE
    envelope = dsse.sign_envelope(kind, payload, signer)
    assert dsse.verify_envelope(envelope, verifiers) == payload
    key, pss, sha = _rsa()
    public = key.public_key()
    message = dsse.pae(kind, payload)
    signature = key.sign(message, pss, sha)
    size = f"statement of {len(payload):,} bytes"
    return [
        common.result(
            "sign a certificate: DSSE Ed25519 vs RSA-4096 PSS",
            common.side(
                common.repeat(
                    lambda: _loop(lambda: dsse.sign_envelope(kind, payload, signer), count)
                ),
                count,
                "envelopes/s",
                "DSSE Ed25519",
            ),
            common.side(
                common.repeat(lambda: _loop(lambda: key.sign(message, pss, sha), count)),
                count,
                "signatures/s",
                "RSA-4096 PSS over the same PAE bytes",
            ),
            operations=count,
            details=[size],
        ),
        common.result(
            "verify a certificate: DSSE Ed25519 vs RSA-4096 PSS",
            common.side(
                common.repeat(
                    lambda: _loop(lambda: dsse.verify_envelope(envelope, verifiers), count)
                ),
                count,
                "envelopes/s",
                "DSSE Ed25519 (parse, base64, PAE, verify)",
            ),
            common.side(
                common.repeat(
                    lambda: _loop(lambda: public.verify(signature, message, pss, sha), count)
                ),
                count,
                "verifications/s",
                "RSA-4096 PSS",
            ),
            operations=count,
            details=[size],
        ),
    ]
