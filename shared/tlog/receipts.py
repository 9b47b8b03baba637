"""Signing write receipts inside the write's transaction, and reading them back per entry.

A writer calls ``record`` after its entries' indices are assigned and before it commits (the
tenant's log counter is still row-locked, so the range is its own): one signature with the
log's active key (``keys``, held outside the database) over the entries it appended, stored
beside them (``storage.receipt_rows``). One entry gets an ``entry`` receipt; several, one
``batch`` receipt over their range, each entry's receipt being that signature and its path.
Bytes: ``shared.integrity.receipts``, ``docs/formats.md`` ("Write receipts").
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Connection

from shared.integrity import receipts
from shared.integrity.note import Signer
from shared.storage import receipt_rows, tree
from shared.storage.receipt_rows import ReceiptRow
from shared.tlog import keys


def sign(
    signer: Signer, tenant: str, first: int, leaves: Sequence[bytes], *, batch: bool = False
) -> tuple[ReceiptRow, list[receipts.AnyReceipt], receipts.BatchReceipt | None]:
    """The row to store, each entry's receipt and the batch receipt (if one was signed) for
    the entries [first, first + len(leaves)) of ``tenant``'s log. ``batch`` signs a batch
    receipt even over one entry."""
    log = keys.origin(tenant)
    if len(leaves) == 1 and not batch:
        one = receipts.sign_entry(signer, log, first, leaves[0])
        return ReceiptRow(first, 1, one.encode(), None), [one], None
    signed, entries = receipts.sign_batch(signer, log, first, leaves)
    row = ReceiptRow(first, len(leaves), signed.encode(), b"".join(leaves))
    return row, list(entries), signed


def record(
    conn: Connection, tenant: str, first: int, leaves: Sequence[bytes]
) -> list[receipts.AnyReceipt]:
    """Sign the entries a writer appended in ``conn``'s transaction and store the receipt:
    each entry's receipt, in index order."""
    row, entries, _ = sign(keys.keyring().active, tenant, first, leaves)
    store(conn, tenant, row)
    return entries


def record_and_commit(
    conn: Connection, ranges: Sequence[tuple[str, int, Sequence[bytes]]]
) -> list[list[receipts.AnyReceipt]]:
    """``record`` for each (tenant, first index, leaves) appended in a transaction that
    ``engine.begun`` opened, then its commit, in one round trip; each range's receipts."""
    signer = keys.keyring().active
    signed = [sign(signer, tenant, first, leaves) for tenant, first, leaves in ranges]
    receipt_rows.insert_and_commit(
        conn, [(tenant, row) for (tenant, _, _), (row, _, _) in zip(ranges, signed, strict=True)]
    )
    return [entries for _, entries, _ in signed]


def sign_batch(
    tenant: str, first: int, leaves: Sequence[bytes]
) -> tuple[ReceiptRow, receipts.BatchReceipt, list[receipts.BatchEntryReceipt]]:
    """A bulk create's receipts, at any size: the row to ``store``, the batch receipt and each
    entry's (with its path). The bulk create signs on its encoding thread while the server
    appends its last chunk, then stores the row in its transaction."""
    log = keys.origin(tenant)
    signed, entries = receipts.sign_batch(keys.keyring().active, log, first, leaves)
    return ReceiptRow(first, len(leaves), signed.encode(), b"".join(leaves)), signed, entries


def store(conn: Connection, tenant: str, row: ReceiptRow) -> None:
    """Store a signed receipt's row in the writer's transaction (before its commit)."""
    receipt_rows.insert(conn, tenant, row)


class RowReceipts:
    """The receipts of one stored row's entries as a client gets them: an entry receipt as
    stored; a batch entry's path computed from the row's leaves (the range's tree built once,
    O(count) memory, on first use). A row that does not decode gives none: the audit names
    it, and a bundle then carries no receipt for those entries."""

    def __init__(self, row: ReceiptRow) -> None:
        self.row = row
        self._single: receipts.AnyReceipt | None = None
        self._batch: receipts.BatchReceipt | None = None
        self._levels: list[list[bytes]] | None = None
        try:
            if row.leaves is None:
                self._single = receipts.decode(row.receipt)
            else:
                self._batch = receipts.decode_batch(row.receipt)
        except receipts.ReceiptError:
            pass

    def at(self, index: int) -> receipts.AnyReceipt | None:
        """The receipt of ``index`` (in the row's range), or None."""
        row = self.row
        if self._single is not None:
            return self._single if index == row.first else None
        if self._batch is None or row.leaves is None or not row.first <= index < row.end:
            return None
        if self._levels is None:
            joined = row.leaves
            self._levels = receipts.range_levels(
                [joined[at : at + 32] for at in range(0, len(joined), 32)]
            )
        offset = index - row.first
        path = tuple(receipts.range_path(self._levels, offset))
        return receipts.BatchEntryReceipt(self._batch, index, self._levels[0][offset], path)


def entry_receipts(rows: Sequence[ReceiptRow]) -> dict[int, receipts.AnyReceipt]:
    """Every covered index's receipt, from stored rows (for a small range: see RowReceipts)."""
    out: dict[int, receipts.AnyReceipt] = {}
    for row in rows:
        held = RowReceipts(row)
        for index in range(row.first, row.end):
            receipt = held.at(index)
            if receipt is not None:
                out[index] = receipt
    return out


def cover_cutover(conn: Connection, tenant: str, signer: Signer) -> None:
    """Sign, once, a batch receipt over the entries written before receipts existed: [0, the
    log size recorded by migration 0013), never past the first receipt a write stored (so no
    entry appended since can be slipped under it). Called by the seal, which holds the key;
    a tenant whose index 0 has a receipt, or that had no entries then, has nothing to do.
    A cut-over that reaches an audit report or a map commit (entries only receipt-signing
    code writes) was moved by an insider to cover later entries whose receipts it deleted:
    nothing is signed (``shared.audit.cutover`` names it)."""
    size = receipt_rows.cutover(conn)
    if size == 0:
        return
    rows = receipt_rows.covering(conn, 0, size)
    if rows and rows[0].first == 0:
        return
    if receipt_rows.first_receipted_kind(conn, size) is not None:
        return  # moved over entries only receipt-signing code writes: sign nothing
    end = min([size] + [r.first for r in rows])
    leaves = tree.leaf_hashes(conn, 0, end)
    row, _, _ = sign(signer, tenant, 0, leaves, batch=True)
    receipt_rows.insert(conn, tenant, row)
