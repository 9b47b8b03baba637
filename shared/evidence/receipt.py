"""Checking one write receipt offline, as a client holding its write's response does: the
receipt's JSON, the keys it pins, the log's origin, the entry's index and its bytes or leaf
hash (``plant verify-receipt``). No database, no network: ``receipts.verify`` on the bytes."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable

from shared.evidence.verdict import VerificationReport
from shared.evidence.verify import pinned
from shared.integrity import receipts


def verify_receipt(
    raw: bytes,
    vkeys: Iterable[str],
    origin: str,
    index: int,
    *,
    leaf_hash: str | None = None,
    entry: bytes | None = None,
) -> VerificationReport:
    """One item, ``receipt``: holds when a pinned key signed ``raw`` (a receipt's JSON, or a
    write's whole response carrying ``receipt``) for this origin, index and entry; otherwise
    names the reason (``receipts.ReceiptError.reason``). Never raises on bad content."""
    report = VerificationReport()
    verifiers = pinned(vkeys, report)
    if not verifiers:
        return report
    try:
        document = json.loads(raw)
        if isinstance(document, dict) and isinstance(document.get("receipt"), dict):
            document = document["receipt"]
        leaf = None if leaf_hash is None else base64.b64decode(leaf_hash, validate=True)
        if leaf is not None and len(leaf) != 32:
            raise receipts.MalformedReceipt("the leaf hash given is not 32 bytes")
        parsed = receipts.verify(document, verifiers, origin, index, leaf_hash=leaf, entry=entry)
    except (ValueError, binascii.Error) as exc:  # JSON, base64 and every ReceiptError
        reason = exc.reason if isinstance(exc, receipts.ReceiptError) else "malformed_encoding"
        report.fail("receipt", f"{reason}: {exc}")
        return report
    report.add("receipt", True, "signed by a pinned key for this log, index and entry")
    report.claims.append(
        f"key {parsed.key_id.hex()} signed, at {parsed.time_ms} ms since the epoch, that the "
        f"entry with this leaf hash is at index {index} of {origin}"
    )
    report.not_proven.append(
        "that the entry is still there: that is what an audit or an evidence bundle shows"
    )
    return report
