"""Stored witness cosignatures on a tenant's checkpoints, and a witness's own state per log.

``checkpoint_cosignatures`` (the tenant's, row-level security): one verified cosignature/v1
line per (checkpoint size, witness name). ``witness_checkpoints`` (a witness's, no tenant):
the size, root and note it last cosigned per origin (migration 0016).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared.integrity.cosignature import add_cosignatures
from shared.storage import tree


def insert(conn: Connection, size: int, witness: str, line: str) -> None:
    """Keep a verified line; a second line by the same witness on the same size is dropped."""
    conn.execute(
        text(
            "INSERT INTO checkpoint_cosignatures (tenant_id, size, witness, line) VALUES "
            "(current_setting('plant.tenant'), :size, :witness, :line) ON CONFLICT DO NOTHING"
        ),
        {"size": size, "witness": witness, "line": line},
    )


def lines_at(conn: Connection, size: int) -> list[str]:
    """The cosignature lines on the checkpoint of ``size``, by witness name."""
    rows = conn.execute(
        text("SELECT line FROM checkpoint_cosignatures WHERE size = :size ORDER BY witness"),
        {"size": size},
    ).all()
    return [r[0] for r in rows]


def cosigned_sizes(conn: Connection) -> dict[str, int]:
    """Witness name -> the largest checkpoint size it cosigned."""
    rows = conn.execute(
        text("SELECT witness, max(size) FROM checkpoint_cosignatures GROUP BY witness")
    ).all()
    return {r[0]: int(r[1]) for r in rows}


@dataclass(frozen=True)
class StoredLine:
    size: int
    witness: str
    line: str
    note: str  # the checkpoint it is on


def every_line(conn: Connection) -> list[StoredLine]:
    """Every stored cosignature with its checkpoint note (the audit verifies each)."""
    rows = conn.execute(
        text(
            "SELECT c.size, c.witness, c.line, k.note FROM checkpoint_cosignatures c "
            "JOIN checkpoints k ON k.tenant_id = c.tenant_id AND k.size = c.size "
            "ORDER BY c.size, c.witness"
        )
    ).all()
    return [StoredLine(int(r[0]), r[1], r[2], r[3]) for r in rows]


@dataclass(frozen=True)
class WitnessState:
    size: int
    root: bytes


def lock_origin(conn: Connection, origin: str) -> WitnessState | None:
    """The witness's state for ``origin``, row-locked to the end of the transaction."""
    row = conn.execute(
        text("SELECT size, root FROM witness_checkpoints WHERE origin = :o FOR UPDATE"),
        {"o": origin},
    ).first()
    return WitnessState(int(row[0]), bytes(row[1])) if row else None


def store_origin(
    conn: Connection, origin: str, held: int | None, size: int, root: bytes, note: str
) -> bool:
    """Compare-and-set: write (size, root) only if the stored size is still ``held`` (None:
    no row yet). False when another request moved it first."""
    if held is None:
        result = conn.execute(
            text(
                "INSERT INTO witness_checkpoints (origin, size, root, note) "
                "VALUES (:o, :s, :r, :n) ON CONFLICT (origin) DO NOTHING"
            ),
            {"o": origin, "s": size, "r": root, "n": note},
        )
    else:
        result = conn.execute(
            text(
                "UPDATE witness_checkpoints SET size = :s, root = :r, note = :n, "
                "updated_at = now() WHERE origin = :o AND size = :held"
            ),
            {"o": origin, "s": size, "r": root, "n": note, "held": held},
        )
    return result.rowcount == 1


def cosigned(conn: Connection, stored: tree.StoredCheckpoint) -> tree.StoredCheckpoint:
    """The checkpoint with its stored cosignature lines after the log's signature (the note
    text and the log's line are unchanged: a reader that knows no witness ignores them)."""
    lines = lines_at(conn, stored.size)
    if not lines:
        return stored
    return tree.StoredCheckpoint(stored.size, stored.root, add_cosignatures(stored.note, lines))
