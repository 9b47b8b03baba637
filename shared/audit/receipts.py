"""The receipts pass: every entry in range carries a write receipt that the tenant's keyring
(old keys included) signed for this log's origin, the entry's index and its leaf hash.

An insider with the database but not the key can then neither append an entry (it has no
receipt, or one signed for another index, log or entry) nor rewrite one, sealed or not: the
audit's own seal signs whatever the table holds, but no receipt vouches for the new bytes.
Each row of ``log_receipts`` is checked once: an entry receipt by its signature, origin and
index; a batch receipt by its signature, origin, range and the MTH of the leaves stored with
it, which then vouch for each entry of the range (so the one that differs is named).

The entry's leaf compared is the stored ``leaf_hash``; an entry whose column disagrees with
its bytes is named by the entries pass first (``state.reported``) and not again here.
"""

from __future__ import annotations

from shared.audit.state import AuditState
from shared.integrity import native_rows, receipts
from shared.integrity.note import Verifier
from shared.storage import copyread, receipt_rows
from shared.storage.receipt_rows import ReceiptRow
from shared.tlog import keys

# Read as one binary COPY a range (``copyread``), the entity id as its text's bytes
_ENTRIES = (
    "SELECT idx, leaf_hash, CAST(entity_id AS text), version, kind FROM log_entries "
    "WHERE tenant_id = current_setting('plant.tenant') AND idx >= {low} AND idx < {high} "
    "ORDER BY idx"
)
_ENTRY_COLUMNS = (copyread.INT8, copyread.raw(32), copyread.raw(36), copyread.INT4, copyread.TEXT)


def vouched(row: ReceiptRow, verifiers: list[Verifier], origin: str) -> list[bytes]:
    """The leaf hashes a stored receipt vouches for at [row.first, row.end), or the
    ``ReceiptError`` naming why it vouches for none."""
    if row.leaves is None:
        single = receipts.decode(row.receipt)
        if not isinstance(single, receipts.Receipt) or row.count != 1:
            raise receipts.MalformedReceipt("a row without leaves holds one entry receipt")
        receipts.verify(single, verifiers, origin, row.first, leaf_hash=single.leaf_hash)
        return [single.leaf_hash]
    batch = receipts.decode_batch(row.receipt)
    receipts.verify_batch(batch, verifiers, origin)
    if (batch.first, batch.count) != (row.first, row.count):
        raise receipts.IndexMismatch(
            f"the batch receipt covers [{batch.first}, +{batch.count}), "
            f"stored for [{row.first}, +{row.count})"
        )
    leaves = [row.leaves[at : at + 32] for at in range(0, len(row.leaves), 32)]
    receipts.verify_range(batch, verifiers, origin, leaves)
    return leaves


def checked(state: AuditState, start: int, end: int) -> None:
    """Name every entry of [start, end) whose receipt is missing (``receipt_missing``) or
    does not vouch for it (``receipt_invalid``, with the ``reason``)."""
    if end <= start:
        return
    signed, have, bad = _vouched_leaves(state, start, end)
    reported, seen = state.reported, bytearray(end - start)
    for low in range(start, end, copyread.RANGE):
        high = min(end, low + copyread.RANGE)
        query = _ENTRIES.format(low=copyread.int_literal(low), high=copyread.int_literal(high))
        read = 0
        for rows in copyread.copy_batches(state.conn, query, _ENTRY_COLUMNS):
            state.rows_read += len(rows)
            read += len(rows)
            for at in native_rows.receipt_rows(rows, start, signed, have, seen, reported):
                index, leaf, entity_id, version, kind = rows[at]
                if index in reported:  # named by a row before it in this batch
                    continue
                offset = 32 * (index - start)
                good = bytes(signed[offset : offset + 32]) if have[index - start] else None
                _entry(state, index, leaf, good, bad.get(index), entity_id.decode(), version, kind)
        if read < high - low:  # an entry under the log's size is gone (sealed or not)
            _missing(state, {index for index in range(low, high) if not seen[index - start]})


def _vouched_leaves(
    state: AuditState, start: int, end: int
) -> tuple[bytearray, bytearray, dict[int, str]]:
    """For [start, end): the leaf the first valid receipt read vouches for at each index (32
    bytes an index), a byte an index set where one does, and why the first invalid receipt
    stored for an index vouches for nothing."""
    verifiers = list(state.keyring.verifiers)
    origin = keys.origin(state.tenant)
    bad: dict[int, str] = {}
    valid: list[tuple[int, int, bytes]] = []  # each valid receipt's span and its leaves there
    for row in receipt_rows.covering(state.conn, start, end):
        low, high = max(row.first, start), min(row.end, end)
        try:
            leaves = b"".join(vouched(row, verifiers, origin))
        except receipts.ReceiptError as exc:
            for index in range(low, high):
                bad.setdefault(index, exc.reason)
            continue
        if low < high:
            valid.append((low, high, leaves[32 * (low - row.first) : 32 * (high - row.first)]))
    signed, have = bytearray(32 * (end - start)), bytearray(end - start)
    for low, high, leaves in reversed(valid):  # the first read for an index written last
        memoryview(signed)[32 * (low - start) : 32 * (high - start)] = leaves
        have[low - start : high - start] = b"\x01" * (high - low)
    return signed, have, bad


def _missing(state: AuditState, absent: set[int]) -> None:
    """Indices under the log's size with no entry, not already named (the entries pass
    names those under a checkpoint; these are past it: acknowledged, not yet sealed)."""
    named = {f.log_index for f in state.findings if f.kind == "missing"}
    for index in sorted(absent - named):
        state.add("missing", f"log entry {index} is missing", log_index=index)


def genuine(state: AuditState, entries: list[tuple[int, bytes]]) -> set[int]:
    """Of these (index, stored leaf hash) pairs, the indices whose leaf a valid write
    receipt vouches for: entries the registry itself appended."""
    if not entries:
        return set()
    verifiers = list(state.keyring.verifiers)
    origin = keys.origin(state.tenant)
    low, high = min(i for i, _ in entries), max(i for i, _ in entries) + 1
    signed: dict[int, bytes] = {}
    for row in receipt_rows.covering(state.conn, low, high):
        try:
            leaves = vouched(row, verifiers, origin)
        except receipts.ReceiptError:
            continue
        signed.update({row.first + at: leaf for at, leaf in enumerate(leaves)})
    return {index for index, leaf in entries if signed.get(index) == leaf}


def _entry(
    state: AuditState,
    index: int,
    leaf: bytes,
    vouched_leaf: bytes | None,
    bad: str | None,
    entity_id: str,
    version: int,
    kind: str,
) -> None:
    where = {"entity_type": kind, "entity_id": entity_id, "version": version, "log_index": index}
    if vouched_leaf == leaf:
        return
    if vouched_leaf is not None:
        reason = receipts.LeafMismatch.reason
        detail = f"entry {index}'s receipt was signed for other bytes"
    elif bad is not None:
        reason = bad
        detail = f"entry {index}'s receipt does not verify ({reason})"
    else:
        state.add("receipt_missing", f"entry {index} has no write receipt", **where)
        return
    state.add("receipt_invalid", detail, extra={"reason": reason}, **where)
