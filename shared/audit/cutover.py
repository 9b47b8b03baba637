"""The receipts' cut-over (``receipt_cutover``, migration 0013): the log size of a tenant
whose entries were written before receipts existed. The row itself is not signed, so the
audit holds it to what is: the first seal after the migration signed one batch receipt over
exactly [0, size) (``tlog.receipts.cover_cutover``), and no entry under it may be of a type
only receipt-signing code writes (an audit report, a map commit). A cut-over moved after that
seal disagrees with the signed receipt; one raised (or made up) to cover entries whose
receipts an insider deleted reaches such an entry, and the seal then signs nothing."""

from __future__ import annotations

from shared.audit.state import AuditState
from shared.integrity import receipts
from shared.storage import receipt_rows


def checked(state: AuditState) -> None:
    """The cut-over row, if the tenant has one, against the receipt at index 0 and the log."""
    size = receipt_rows.cutover(state.conn)
    if size == 0:
        return
    rows = receipt_rows.covering(state.conn, 0, 1)
    signed = _signed_count(rows[0]) if rows and rows[0].first == 0 else None
    if signed == size:
        return  # as the first seal signed it (the receipts pass checks the signature)
    reached = receipt_rows.first_receipted_kind(state.conn, size)
    state.rows_read += 2
    extra: dict[str, int] = {"cutover_size": size}
    if signed is not None:
        extra["signed_size"] = signed
    if reached is not None:
        extra["receipted_index"] = reached
    elif signed is None:
        return  # not signed yet (the seal failed): the receipts pass names the entries
    said = [f"the receipt signed for it covers [0, {signed})"] if signed is not None else []
    if reached is not None:
        said.append(f"it covers entry {reached}, which only code that signs receipts writes")
    state.add(
        "altered",
        f"the receipts' cut-over says {size}, but " + " and ".join(said),
        extra=extra,
        section="receipt_cutover",
        field="size",
    )


def _signed_count(row: receipt_rows.ReceiptRow) -> int | None:
    """How many entries the receipt at index 0 says it covers (1 for an entry receipt, a
    write's own: then no entry predates receipts); None for bytes that are no receipt (the
    receipts pass names those)."""
    if row.leaves is None:
        return 1
    try:
        return receipts.decode_batch(row.receipt).count
    except receipts.ReceiptError:
        return None
