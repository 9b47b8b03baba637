"""The full map check: the whole map replayed from a read of the log, its commits compared
as they come, and every stored stratum compared with the recomputed map's at the last
commit."""

from __future__ import annotations

from typing import Any

from shared.audit import map_feed
from shared.audit.map_check.replay import Replay, invalid
from shared.audit.state import AuditState
from shared.integrity import sparse_merkle
from shared.storage import copyread, map_strata
from shared.tlog import map_commit

_ENTRIES = (
    "SELECT idx, entry_type, kind, CAST(entity_id AS text), version, leaf_hash, "
    "CASE WHEN entry_type <> 'certificate' THEN body END FROM log_entries "
    "WHERE tenant_id = current_setting('plant.tenant') AND idx < {end} ORDER BY idx"
)
_COLUMNS = (
    copyread.INT8,
    copyread.TEXT,
    copyread.TEXT,
    copyread.raw(36),
    copyread.INT4,
    copyread.raw(32),
    copyread.BYTEA,
)
_STRATA = (
    "SELECT prefix, nodes FROM heads_map_strata WHERE tenant_id = current_setting('plant.tenant')"
    "{range} ORDER BY prefix"
)
_STRATA_COLUMNS = (copyread.BYTEA, copyread.BYTEA)


def _replayed(state: AuditState, start: int, size: int) -> None:
    """The whole map replayed from a second read of the log, its commits from ``start`` on
    compared, and its nodes: when no verified commit is there to build on."""
    replay = Replay(0)
    found = len(state.findings)
    query = _ENTRIES.format(end=copyread.int_literal(size))
    feed = map_feed.Feed()
    for rows in copyread.copy_batches(state.conn, query, _COLUMNS):
        for idx, entry_type, kind, raw_id, version, leaf, body in rows:
            status = map_commit.status_of(body) if entry_type == "version" else None
            feed.entry(idx, entry_type, kind, raw_id.decode(), version, leaf, status, body)
        replay.take(feed)
        feed = map_feed.Feed()
    replay.take(feed)
    for idx, detail, who in replay.found:
        invalid(state, idx, detail, who)
    # the commits before ``start`` were verified before: what is named of them now is not new
    state.findings[found:] = [
        f for f in state.findings[found:] if f.log_index is None or f.log_index >= start
    ]
    if replay.last == size - 1:
        _nodes(state, replay)


def _stored_strata(state: AuditState, nodes: int) -> Any:
    """The stored strata, (prefix, bytes), in prefix order (the recomputed map's, bytes
    compared as bytea is), about ``copyread.RANGE`` nodes a statement so that each stays
    inside the statement timeout: in ranges of their prefixes' first two bytes (keys are
    hashes, so the ranges hold about as many), sized by the map the log gives (``nodes``)."""
    parts = 1
    while parts < nodes / copyread.RANGE and parts < 1 << 16:
        parts *= 2
    bounds = [((j << 16) // parts).to_bytes(2, "big") for j in range(1, parts)]
    for low, high in zip([None, *bounds], [*bounds, None], strict=True):
        bounds_sql = "" if low is None else f" AND prefix >= {copyread.bytea_literal(low)}"
        bounds_sql += "" if high is None else f" AND prefix < {copyread.bytea_literal(high)}"
        query = _STRATA.format(range=bounds_sql)
        for batch in copyread.copy_batches(state.conn, query, _STRATA_COLUMNS):
            state.rows_read += len(batch)
            yield from batch


def _nodes(state: AuditState, replay: Replay) -> None:
    """Every stored stratum against the recomputed map's at the last commit: both streamed
    in prefix order and merged, a stratum equal to its recomputed row passing whole, so
    neither map is held (a dict of the recomputed nodes by address added ~430 MB to the
    peak RSS at 1,000,000 heads). Only the nodes that differ or lack are kept, to be named
    in address order after the strata found unreadable; an unreadable stratum's nodes are
    not named."""
    expected = replay.memory.strata()
    want = next(expected, None)
    wrong: list[tuple[sparse_merkle.Address, bytes]] = []
    for prefix, data in _stored_strata(state, _NODES_A_HEAD * len(replay.versions)):
        while want is not None and want[0] < prefix:  # a recomputed stratum not stored
            wrong += _differing(want[0], {}, map_strata.decode(want[1]))
            want = next(expected, None)
        mine = b""
        if want is not None and want[0] == prefix:
            mine, want = want[1], next(expected, None)
            if data == mine:
                continue
        try:
            stored = map_strata.decode(data)
        except map_strata.MalformedStratum as exc:
            invalid(
                state, replay.last,
                f"the stored map stratum under prefix {prefix.hex() or '(none)'} is "
                f"unreadable: {exc}",
            )  # fmt: skip
            continue
        wrong += _differing(prefix, stored, map_strata.decode(mine) if mine else {})
    while want is not None:
        wrong += _differing(want[0], {}, map_strata.decode(want[1]))
        want = next(expected, None)
    if not wrong:
        return
    keys = {node[1:33] for _, node in wrong if node[:1] == sparse_merkle.LEAF}
    owners = {key: e for e in replay.versions if (key := map_feed.entity_key(e)) in keys}
    for (depth, _), node in sorted(wrong, key=lambda item: item[0]):
        owner = owners.get(node[1:33]) if node[:1] == sparse_merkle.LEAF else None
        invalid(
            state,
            replay.last,
            f"the stored map node at depth {depth} differs from the one the log gives",
            owner,
        )


_NODES_A_HEAD = 3  # a map of n random keys holds ~2.4 n nodes: to size the strata's reads


def _differing(
    prefix: bytes, stored: dict[int, bytes], expected: dict[int, bytes]
) -> list[tuple[sparse_merkle.Address, bytes]]:
    """The nodes of one stratum (by position) that differ or lack on one side, by address,
    each with the node the log gives, else the stored one."""
    return [
        (map_strata.address(prefix, position), expected.get(position) or stored[position])
        for position in sorted(stored.keys() | expected.keys())
        if stored.get(position) != expected.get(position)
    ]
