"""The stored write receipts (``log_receipts``, migration 0013): one row per signature, found
by the index range it covers. The bytes are ``shared.integrity.receipts``' encodings; this
module only moves them (signing and checking sit above, in ``shared.tlog.receipts`` and the
audit)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared.storage import direct

# The row names its tenant by setting ``plant.tenant`` (as every transaction does), so that
# row-level security's check passes for a group statement's each tenant in one statement.
_INSERT = text(
    "INSERT INTO log_receipts (tenant_id, first_idx, count, receipt, leaves) "
    "SELECT set_config('plant.tenant', :tenant, true), :first, :count, :receipt, :leaves"
)

# The rows that cover any index of [low, high): those starting in it, and the one starting
# last before it (rows never overlap when written by the application; the audit reads every
# row starting in the range, so an extra one is seen).
_COVERING = text(
    "(SELECT first_idx, count, receipt, leaves FROM log_receipts "
    " WHERE tenant_id = current_setting('plant.tenant') AND first_idx < :low "
    " ORDER BY first_idx DESC LIMIT 1) "
    "UNION ALL "
    "(SELECT first_idx, count, receipt, leaves FROM log_receipts "
    " WHERE tenant_id = current_setting('plant.tenant') AND first_idx >= :low "
    " AND first_idx < :high ORDER BY first_idx)"
)


@dataclass(frozen=True, slots=True)
class ReceiptRow:
    """One stored signature: an entry receipt (``count`` 1, no ``leaves``) or a batch receipt
    over [first, first + count) with the range's leaf hashes joined (32 bytes each)."""

    first: int
    count: int
    receipt: bytes
    leaves: bytes | None

    @property
    def end(self) -> int:
        return self.first + self.count


def insert(conn: Connection, tenant: str, row: ReceiptRow) -> None:
    """Store one receipt of ``tenant``'s log in the caller's transaction."""
    conn.execute(
        _INSERT,
        {
            "tenant": tenant,
            "first": row.first,
            "count": row.count,
            "receipt": row.receipt,
            "leaves": row.leaves,
        },
    )


def _literal_insert(tenant: str, row: ReceiptRow) -> str:
    """``_INSERT`` with its values written in: integers and hex only (the tenant too, as
    UTF-8 hex), so nothing a client sent can be read as SQL."""
    leaves = "NULL" if row.leaves is None else f"decode('{row.leaves.hex()}', 'hex')"
    return (
        "INSERT INTO log_receipts (tenant_id, first_idx, count, receipt, leaves) "
        f"SELECT set_config('plant.tenant', convert_from(decode('{tenant.encode().hex()}', "
        f"'hex'), 'UTF8'), true), {int(row.first)}, {int(row.count)}, "
        f"decode('{row.receipt.hex()}', 'hex'), {leaves}"
    )


def insert_and_commit(conn: Connection, rows: Sequence[tuple[str, ReceiptRow]]) -> None:
    """Store receipts of these tenants' logs and COMMIT, in one round trip: one query of the
    simple protocol (several statements, no parameters), in a transaction ``engine.begun``
    opened. A failing insert aborts the rest, COMMIT included."""
    statements = [_literal_insert(tenant, row) for tenant, row in rows]
    direct.run(conn, ";\n".join([*statements, "COMMIT"]))


def covering(conn: Connection, low: int, high: int) -> list[ReceiptRow]:
    """The current tenant's receipt rows that may cover an index of [low, high), by first
    index (the row before ``low`` only if it reaches into the range)."""
    rows = conn.execute(_COVERING, {"low": low, "high": high}).all()
    out = [
        ReceiptRow(r[0], r[1], bytes(r[2]), bytes(r[3]) if r[3] is not None else None) for r in rows
    ]
    return sorted((r for r in out if r.first >= low or r.end > low), key=lambda r: r.first)


def cutover(conn: Connection) -> int:
    """The current tenant's log size when receipts began (0 for a tenant created after)."""
    size = conn.execute(
        text("SELECT size FROM receipt_cutover WHERE tenant_id = current_setting('plant.tenant')")
    ).scalar()
    return int(size or 0)


def first_receipted_kind(conn: Connection, below: int) -> int | None:
    """The index of the current tenant's first entry below ``below`` of a type only code that
    signs receipts writes (an audit report, migration 0014; a map commit, 0015), if any: no
    entry from it on was written before receipts, so no cut-over may reach it."""
    found = conn.execute(
        text(
            "SELECT min(idx) FROM log_entries WHERE tenant_id = current_setting('plant.tenant') "
            "AND entry_type IN ('audit', 'map_commit') AND idx < :below"
        ),
        {"below": below},
    ).scalar()
    return None if found is None else int(found)
