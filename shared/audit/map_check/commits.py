"""The map pass over a range: every checkpoint after the first map commit ends with one,
and the commits are checked, in full or from the last verified one."""

from __future__ import annotations

from sqlalchemy import text

from shared.audit.map_check.full import _nodes
from shared.audit.map_check.incremental import incremental
from shared.audit.map_check.replay import Replay, invalid
from shared.audit.state import AuditState


def checked(state: AuditState, replay: Replay, start: int, size: int) -> None:
    """The map pass over what ``replay`` was fed of entries [start, size) (by the entries
    pass, or by audit parts' feeds in a merge)."""
    first = state.conn.execute(
        text(
            "SELECT min(idx) FROM log_entries WHERE tenant_id = current_setting('plant.tenant') "
            "AND entry_type = 'map_commit'"
        )
    ).scalar()
    if first is None:
        return
    _ends(state, int(first), start)
    for idx, detail, who in replay.found:
        invalid(state, idx, detail, who)
    if replay.full:
        if replay.last == size - 1:  # else the stored map is of a commit the log lacks: named
            _nodes(state, replay)
    else:
        incremental(state, replay, start, size)


def _ends(state: AuditState, first: int, since: int) -> None:
    """Every checkpoint after the first commit ends with a commit (its last leaf). The last
    leaves are probed by index from a list made here: ``e.idx = c.size - 1`` in a join is
    no index condition under row-level security (the arithmetic is not leakproof), and the
    join scanned the whole log."""
    sizes = [
        int(size)
        for (size,) in state.conn.execute(
            text(
                "SELECT size FROM checkpoints WHERE tenant_id = current_setting('plant.tenant') "
                "AND size > :first AND size >= :since ORDER BY size"
            ),
            {"first": first, "since": since},
        )
    ]
    if not sizes:
        return
    commits = {
        int(idx)
        for (idx,) in state.conn.execute(
            text(
                "SELECT idx FROM log_entries WHERE tenant_id = current_setting('plant.tenant') "
                "AND idx = ANY(CAST(:ends AS bigint[])) AND entry_type = 'map_commit'"
            ),
            {"ends": "{" + ",".join(str(size - 1) for size in sizes) + "}"},
        )
    }
    for size in sizes:
        if size - 1 not in commits:
            invalid(
                state, size - 1, f"the checkpoint of size {size} does not end with a map commit"
            )
