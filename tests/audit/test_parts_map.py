"""A merge's map pass replays the map from what the parts carry of it (``part_ranges``), never
reading the log again, and finds exactly what a one-process full audit finds, in the same
order, on every map attack: a commit holding a wrong root, stored nodes rewritten, deleted,
planted or out of order, a commit dropped, a head disagreeing with the map; with the wrong
commit or the rewritten head's entry at a part's first index, at another range's first index
and inside a range.

The merge checks what a part says of the map against what it can check itself. The commits
are the log's, read by the merge: a part that moves, adds or drops one is refused by name
before the run starts (one whose feed and header disagree, during it). A part that states a
head the log does not give is named at the next commit, whose root the heads no longer
rebuild: a lie reaches the map pass as a finding, unless it agrees with a signed commit
(docs/performance.md says what that leaves to the parts' signature)."""

from __future__ import annotations

import base64
import json
import marshal
import zlib
from array import array
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from shared import config, tlog
from shared.audit import parts, runs
from shared.audit.map_check import incremental
from shared.integrity import heads_map
from shared.tlog import anchors
from tests.audit import test_compiled_twin as twin
from tests.audit import test_parts
from tests.audit.test_parts_store import _resigned, _stored_edit
from tests.support import tampering

COUNT = test_parts.COUNT


def _read_again(*args: Any) -> None:
    raise AssertionError("the merge's map pass read the log again")


def _merged(history, execution: str) -> dict:
    """The merged run, its map pass held to the parts' feeds (reading the log fails)."""
    with pytest.MonkeyPatch.context() as patched:
        # the one place left where the map pass reads the log itself
        patched.setattr(incremental, "_replayed", _read_again)
        return test_parts._merge(history, execution)


def _merged_alike(history) -> list[dict]:
    """A one-process full audit's findings, asserted equal, in order, to the merge's."""
    alone = runs._audit(history.tenant, "full")
    merged = _merged(history, test_parts._write_parts(history))
    assert merged["findings"] == alone["findings"], (merged["findings"], alone["findings"])
    assert merged["summary"]["parts"]["entries"] == alone["verified_to"] > 0
    return alone["findings"]


def _map_found(found: list[dict]) -> list[tuple[str | None, int | None]]:
    return [(f["entity_id"], f["log_index"]) for f in found if f["kind"] == "map_invalid"]


def _wrong_commit(history, attack, monkeypatch) -> None:
    history.amend(history.skills[2], 1, "writes safe Rust")
    twin.seal_with_a_wrong_root(monkeypatch, history.tenant)
    history.amend(history.skills[0], 2, "writes even more idiomatic Python")
    tlog.seal(history.tenant)


def _node_rewritten_before_a_seal(history, attack, monkeypatch) -> None:
    attack(tampering.MAP_ROOT_CHILDREN_FLIPPED, t=history.tenant)
    history.amend(history.skills[2], 1, "writes safe Rust")
    tlog.seal(history.tenant)


def _twin(tamper: Callable[..., None]) -> Callable[..., None]:
    def made(history, attack, monkeypatch) -> None:
        tamper(history, attack)

    made.__name__ = tamper.__name__
    return made


@pytest.mark.parametrize(
    "tamper",
    [
        *map(_twin, [*twin.MAP_ATTACKS, twin._changed_leaf_flipped]),
        _wrong_commit,
        _node_rewritten_before_a_seal,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_every_map_attack_is_found_alike_by_parts_and_merge(history, attack, monkeypatch, tamper):
    tamper(history, attack, monkeypatch)
    assert _merged_alike(history), "each attack is named"


def test_a_clean_log_packs_each_version_as_its_summarys_place_and_leaf(history):
    """The compact form holds: a clean log's versions go as steps and leaves, none whole."""
    history.amend(history.skills[2], 1, "writes safe Rust")
    tlog.seal(history.tenant)
    execution = test_parts._write_parts(history)
    store = anchors.anchor_store(config.settings())
    stepped = 0
    for index in range(COUNT):
        envelope = json.loads(store.get_object(parts.object_name(history.tenant, execution, index)))
        payload = base64.b64decode(envelope["payload"])
        values, _ = marshal.loads(zlib.decompress(payload.partition(b"\n")[2]))  # noqa: S302
        for scanned in values:
            for steps, leaves, whole, *_ in scanned[13]:
                assert whole == {} and len(leaves) == 8 * len(steps)
                stepped += len(steps) // 4
    assert stepped >= len(history.skills)  # each skill's newest version at least
    assert _merged(history, execution)["findings"] == []


_PLACES = ("a part's first index", "another range's first index", "inside a range")


def _places(size: int) -> dict[str, set[int]]:
    """The indices of a log of ``size`` by where they fall among the parts' ranges."""
    cut = parts.ranges(size, COUNT)
    firsts = {share[0][0] for i in range(1, COUNT) if (share := parts.share(size, COUNT, i))}
    return {
        _PLACES[0]: firsts,
        _PLACES[1]: {low for low, _ in cut[1:]} - firsts,
        _PLACES[2]: {i for low, high in cut for i in range(low + 1, high)},
    }


def _plan(where: str, placed: Callable[[int, int], tuple[int, int]]) -> tuple[int, int]:
    """(pad, rounds) such that the entry ``placed(pad, rounds)`` gives (its index, the log's
    size) falls ``where``."""
    for pad in range(1, 9):
        for rounds in range(13):
            index, size = placed(pad, rounds)
            if index in _places(size)[where]:
                return pad, rounds
    raise AssertionError(f"no layout puts the entry at {where}")


def _size(superuser, tenant: str) -> int:
    with superuser.connect() as conn:
        return int(
            conn.execute(
                text("SELECT size FROM log_heads WHERE tenant_id = :t"), {"t": tenant}
            ).scalar_one()
        )


class _Versions:
    """Amends that keep count of each skill's version."""

    def __init__(self, history) -> None:
        self.history = history
        self.at = {history.skills[0]: 2, history.skills[2]: 1}

    def amend(self, entity_id: str) -> None:
        version = self.at[entity_id]
        self.history.amend(entity_id, version, f"as of version {version + 1}")
        self.at[entity_id] = version + 1


@pytest.mark.parametrize("where", _PLACES)
def test_a_wrong_commit_is_found_alike_wherever_it_falls(history, superuser, monkeypatch, where):
    n, amended = _size(superuser, history.tenant), _Versions(history)
    pad, rounds = _plan(where, lambda pad, rounds: (n + pad, n + pad + 1 + 2 * rounds))
    for _ in range(pad):
        amended.amend(history.skills[2])
    twin.seal_with_a_wrong_root(monkeypatch, history.tenant)
    for _ in range(rounds):
        amended.amend(history.skills[0])
        tlog.seal(history.tenant)
    wrong = n + pad
    assert wrong in _places(_size(superuser, history.tenant))[where]
    assert _map_found(_merged_alike(history)) == [(history.skills[2], wrong)]


@pytest.mark.parametrize("where", _PLACES)
def test_a_stored_head_rewritten_is_found_alike_wherever_its_entry_falls(
    history, superuser, attack, entry_indices, where
):
    n, amended = _size(superuser, history.tenant), _Versions(history)
    pad, rounds = _plan(where, lambda pad, rounds: (n + pad - 1, n + pad + 1 + 2 * rounds))
    skill = history.skills[0]
    for _ in range(pad):
        amended.amend(skill)
    tlog.seal(history.tenant)
    for _ in range(rounds):
        amended.amend(history.skills[2])
        tlog.seal(history.tenant)
    newest = entry_indices(history.tenant, skill)[-1]
    assert newest == n + pad - 1 and newest in _places(_size(superuser, history.tenant))[where]
    key = heads_map.entity_key(__import__("uuid").UUID(skill))
    attack(tampering.MAP_LEAF_FLIPPED, t=history.tenant, k=key)
    found = _map_found(_merged_alike(history))
    assert found and {entity for entity, _ in found} == {skill}, found


# --- parts that lie, signed by the log's key ---------------------------------------------


def _edited(history, execution: str, index: int, edit) -> None:
    """Part ``index`` edited by ``edit(header, values)`` and signed again by the log's key."""
    store = anchors.anchor_store(config.settings())
    name = parts.object_name(history.tenant, execution, index)
    envelope = json.loads(store.get_object(name))
    _stored_edit(store, name, _resigned(envelope, edit))


def _with_commits(history) -> tuple[str, int, list[int]]:
    """Parts written over a log with a map commit in every part past the first: the
    execution, a part index past 0 holding a commit, and that part's commits."""
    amended = _Versions(history)
    for _ in range(6):
        amended.amend(history.skills[2])
        tlog.seal(history.tenant)
    execution = test_parts._write_parts(history)
    store = anchors.anchor_store(config.settings())
    for index in range(1, COUNT):
        envelope = json.loads(store.get_object(parts.object_name(history.tenant, execution, index)))
        header = json.loads(base64.b64decode(envelope["payload"]).partition(b"\n")[0])
        if header["commits"]:
            return execution, index, header["commits"]
    raise AssertionError("no part past the first holds a commit")


@pytest.mark.parametrize("change", ["moved", "dropped", "added"])
def test_a_part_that_places_the_commits_otherwise_is_refused_by_name(history, superuser, change):
    execution, index, commits = _with_commits(history)
    placed = {
        "moved": [c - 1 for c in commits],
        "dropped": commits[:-1],
        "added": sorted({*commits, commits[0] - 1}),
    }[change]

    def edit(header, values):
        header["commits"] = placed
        return header, values

    _edited(history, execution, index, edit)
    name = parts.object_name(history.tenant, execution, index)
    with pytest.raises(parts.PartsRefused, match=f"part {index} \\({name}\\) places the map"):
        parts.merge(history.auditor, execution, COUNT)
    with superuser.connect() as conn:
        started = conn.execute(
            text("SELECT count(*) FROM audit_runs WHERE tenant_id = :t AND mode = 'full'"),
            {"t": history.tenant},
        ).scalar_one()
    assert started == 0  # refused before any run started


def test_a_part_whose_feed_and_header_disagree_is_refused_by_name(history):
    execution, index, _ = _with_commits(history)

    def edit(header, values):
        scanned, found = values
        for rng in scanned:
            rng[13][:] = [(*s[:5], None) for s in rng[13]]  # its feed names no commit
        return header, (scanned, found)

    _edited(history, execution, index, edit)
    name = parts.object_name(history.tenant, execution, index)
    with pytest.raises(parts.PartsRefused, match=f"part {index} \\({name}\\): its feed"):
        parts.merge(history.auditor, execution, COUNT)


def _positions(steps: bytes) -> list[int]:
    """The summaries' positions a packed segment's steps name."""
    at, out = -1, []
    for step in array("I", steps):
        at = (at + step) % (1 << 32)
        out.append(at)
    return out


def _steps(positions: list[int]) -> bytes:
    steps = [(b - a) % (1 << 32) for a, b in zip([-1, *positions], positions, strict=False)]
    return array("I", steps).tobytes()


@pytest.mark.parametrize("lie", ["leaf", "status", "left out"])
def test_a_part_that_states_a_head_the_log_does_not_give_is_named_at_the_next_commit(
    history, superuser, entry_indices, lie
):
    """The lie is one signed part's; the commits and the stored map are the log's and the
    seal's, which no head but the log's rebuilds."""
    skill, amended = history.skills[2], _Versions(history)
    for _ in range(6):
        amended.amend(skill)
    tlog.seal(history.tenant)
    size = _size(superuser, history.tenant)
    newest = entry_indices(history.tenant, skill)[-1]
    index = next(i for i in range(COUNT) if any(
        low <= newest < high for low, high in parts.share(size, COUNT, i)))  # fmt: skip
    execution = test_parts._write_parts(history)
    assert runs._audit(history.tenant, "full")["findings"] == []

    def edit(header, values):
        scanned, found = values
        (held,) = [r for r in scanned if r[0] <= newest < r[1]]
        latest, feed = held[8], held[13]
        at = list(latest).index(skill)
        (segment,) = [i for i, s in enumerate(feed) if at in _positions(s[0])]
        steps, leaves, whole, certificates, others, commit = feed[segment]
        where = _positions(steps).index(at)
        if lie == "leaf":
            leaves = leaves[: 32 * where] + bytes(32) + leaves[32 * where + 32 :]
        elif lie == "status":
            latest[skill] = (*latest[skill][:3], "retired", *latest[skill][4:])
        else:
            kept = [p for p in _positions(steps) if p != at]
            steps, leaves = _steps(kept), leaves[: 32 * where] + leaves[32 * where + 32 :]
        feed[segment] = (steps, leaves, whole, certificates, others, commit)
        return header, (scanned, found)

    _edited(history, execution, index, edit)
    merged = _merged(history, execution)
    assert (skill, size - 1) in _map_found(merged["findings"]), merged["findings"]
