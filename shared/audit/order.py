"""Entries swapped with their leaf hashes: every row agrees with its stored leaf, yet the
bytes no longer rebuild the signed root. The stored level-1 nodes, made when the entries were
in place, name the swap: the one pair of indexes whose exchange makes every disagreeing
level-1 node agree again is named ``reordered`` (each entry where it is now, and where it
belongs). Read only when the root fails with no entry otherwise named."""

from __future__ import annotations

from itertools import combinations

from sqlalchemy import text

from shared.audit import reads
from shared.audit.state import AuditState
from shared.integrity import merkle

_MAX_PAIRS = 2  # more disagreeing level-1 nodes than one swap can explain: not named here


def swapped(state: AuditState, size: int) -> bool:
    """Name the swap that explains the tree of ``size`` leaves, if one does."""
    leaves = reads.stored_leaves(state, 0, size)
    level1 = {
        int(r[0]): bytes(r[1])
        for r in state.conn.execute(
            text(
                "SELECT idx, hash FROM log_nodes WHERE tenant_id = "
                "current_setting('plant.tenant') AND level = 1 AND idx < :n"
            ),
            {"n": size >> 1},
        )
    }
    state.rows_read += len(level1)

    def agrees(tree: dict[int, bytes], k: int) -> bool:
        left, right = tree.get(2 * k), tree.get(2 * k + 1)
        return left is not None and right is not None and merkle.node_hash(left, right) == level1[k]

    bad = [k for k in level1 if not agrees(leaves, k)]
    if not bad or len(bad) > _MAX_PAIRS:
        return False
    for a, b in combinations(sorted({i for k in bad for i in (2 * k, 2 * k + 1)}), 2):
        trial = {**leaves, a: leaves.get(b), b: leaves.get(a)}
        if all(agrees(trial, k) for k in bad):  # type: ignore[arg-type]
            _name(state, a, b)
            return True
    return False


def _name(state: AuditState, a: int, b: int) -> None:
    """Both entries of the swap, each where it is now and where it belongs."""
    rows = state.conn.execute(
        text(
            "SELECT idx, kind, CAST(entity_id AS text), version FROM log_entries "
            "WHERE tenant_id = current_setting('plant.tenant') AND idx IN (:a, :b) ORDER BY idx"
        ),
        {"a": a, "b": b},
    ).all()
    for index, kind, entity_id, version in rows:
        belongs = b if int(index) == a else a
        state.add(
            "reordered",
            f"entry {index} belongs at {belongs}: the two were swapped with their leaf hashes",
            entity_type=kind,
            entity_id=entity_id,
            version=int(version),
            log_index=int(index),
            extra={"belongs_at": belongs},
        )
