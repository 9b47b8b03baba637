"""An evidence bundle's signed statement: what the bundle covers, in the log key's own words.

A ``plant-evidence-bundle/3`` document ends with ``"statement"``, a DSSE envelope (see
integrity/dsse.py) signed with the log's active Ed25519 key. Its payload type is
``PAYLOAD_TYPE`` and its payload is the RFC 8785 canonical JSON of::

    {"format": "plant-evidence-bundle/3",
     "tenant": <tenant>, "origin": <the checkpoint's origin line>, "created_at": <RFC 3339>,
     "filters": {"kind": <entity type> | null, "entity": <entity id> | null},
     "checkpoint": {"size": N, "root": <base64 root hash>},
     "previous_checkpoint": {"size": M, "root": <base64 root hash>} | null,
     "entries": {"count": n, "sha256": <hex>}}

so the signed bytes are ``DSSEv1 <len(type)> <type> <len(payload)> <payload>``. ``entries``
names the bundle's entries in the order they appear: ``count`` of them, and ``sha256`` is
SHA-256 over, for each one, its log index as 8 bytes big-endian followed by its 32-byte leaf
hash. The statement is the registry's word that these, and no others, are the entries below
checkpoint N matching the filters; for a filtered bundle that is all the log cannot prove.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from shared.integrity import canonical, dsse
from shared.integrity.note import Signer

PAYLOAD_TYPE = "application/vnd.plant.evidence-bundle+json"


class Coverage:
    """The running count and digest of a bundle's entries, as the statement names them."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.count = 0

    def add(self, index: int, leaf_hash: bytes) -> None:
        self._hash.update(index.to_bytes(8, "big") + leaf_hash)
        self.count += 1

    def summary(self) -> dict[str, Any]:
        return {"count": self.count, "sha256": self._hash.hexdigest()}


def _size_root(checkpoint: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    return {"size": checkpoint["size"], "root": checkpoint["root"]}


def payload(header: Mapping[str, Any], entries: Mapping[str, Any]) -> dict[str, Any]:
    """The statement of a bundle whose header (its fields as the bundle spells them, roots in
    base64) is ``header`` and whose entries are summarised by ``entries``."""
    return {
        "format": header["format"],
        "tenant": header["tenant"],
        "origin": header["origin"],
        "created_at": header["created_at"],
        "filters": {"kind": header["filters"]["kind"], "entity": header["filters"]["entity"]},
        "checkpoint": _size_root(header["checkpoint"]),
        "previous_checkpoint": _size_root(header["previous_checkpoint"]),
        "entries": dict(entries),
    }


def sign(header: Mapping[str, Any], coverage: Coverage, signer: Signer) -> dict[str, Any]:
    """The ``statement`` envelope that closes the bundle."""
    body = canonical.dumps(payload(header, coverage.summary()))
    return dsse.sign_envelope(PAYLOAD_TYPE, body, signer)
