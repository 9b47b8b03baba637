"""DSSE v1 envelopes signed with Ed25519.

Bytes signed: ``PAE(type, payload) = "DSSEv1" SP len(type) SP type SP len(payload) SP payload``
with the lengths as ASCII decimal byte counts. An envelope is
``{"payload": base64, "payloadType": type, "signatures": [{"keyid": hex, "sig": base64}]}``;
the key id is the signer's C2SP note key id in hex (see note.py), so one key id names a key
across checkpoints and certificates.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from shared.integrity.note import Signer, Verifier


class EnvelopeError(ValueError):
    """The envelope is malformed or no known key verified it."""


def pae(payload_type: str, payload: bytes) -> bytes:
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def sign_envelope(payload_type: str, payload: bytes, signer: Signer) -> dict[str, Any]:
    signature = signer.sign(pae(payload_type, payload))
    return {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": payload_type,
        "signatures": [{"keyid": signer.key_id_hex, "sig": base64.b64encode(signature).decode()}],
    }


def verify_envelope(envelope: Any, verifiers: Mapping[str, Verifier]) -> bytes:
    """Return the payload if a known key signed it; raise EnvelopeError otherwise."""
    if not isinstance(envelope, dict) or set(envelope) != {"payload", "payloadType", "signatures"}:
        raise EnvelopeError("not a DSSE envelope")
    payload_type, signatures = envelope["payloadType"], envelope["signatures"]
    if not isinstance(payload_type, str) or not isinstance(signatures, list) or not signatures:
        raise EnvelopeError("the envelope has no payload type or no signature")
    try:
        payload = base64.b64decode(envelope["payload"], validate=True)
    except (binascii.Error, TypeError, ValueError) as exc:
        raise EnvelopeError("the payload is not base64") from exc
    message = pae(payload_type, payload)
    for entry in signatures:
        if not isinstance(entry, dict):
            raise EnvelopeError("a signature entry is not an object")
        verifier = verifiers.get(entry.get("keyid", ""))
        if verifier is None:
            continue
        try:
            signature = base64.b64decode(entry.get("sig", ""), validate=True)
        except (binascii.Error, TypeError, ValueError) as exc:
            raise EnvelopeError("a signature is not base64") from exc
        if verifier.verify(message, signature):
            return payload
        raise EnvelopeError(f"the signature by key {entry['keyid']} does not verify")
    raise EnvelopeError("no known key signed the envelope")
