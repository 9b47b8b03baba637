"""The audit's map pass (issue 24): each map commit recomputed from the log, each stored node
compared, and the attacks on them named as ``map_invalid`` with the commit's index and the
entity where one explains it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from shared import tlog
from shared.errors import IntegrityViolation
from shared.integrity import heads_map, sparse_merkle
from shared.registry import certification, ids, writes
from shared.storage import copyread, map_strata
from tests.audit import test_compiled_twin
from tests.audit.conftest import History, make_history
from tests.support import tampering


def _of(run: dict, kind: str) -> list[dict]:
    return [f for f in run["findings"] if f["kind"] == kind]


def _last_commit(superuser, tenant: str) -> int:
    with superuser.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT max(idx) FROM log_entries WHERE tenant_id = :t "
                    "AND entry_type = 'map_commit'"
                ),
                {"t": tenant},
            ).scalar_one()
        )


def test_a_clean_history_has_no_map_finding_full_or_incremental(history):
    assert history.audit("full")["findings"] == []
    history.amend(history.skills[2], 1, "writes safe Rust")
    tlog.seal(history.tenant)
    assert history.audit("incremental")["findings"] == []
    assert history.audit("full")["findings"] == []
    assert history.audit("full")["findings"] == []


def test_a_leaf_rewritten_in_the_stored_map_is_named_by_the_full_audit(history, attack, superuser):
    key = heads_map.entity_key(__import__("uuid").UUID(history.skills[0]))
    # a leaf no proof reads (its parent carries its hash): only the audit can see it
    attack(
        tampering.MAP_LEAF_FLIPPED,
        t=history.tenant,
        k=key,
    )
    found = _of(history.audit("full"), "map_invalid")
    assert [(f["entity_id"], f["log_index"]) for f in found] == [
        (history.skills[0], _last_commit(superuser, history.tenant))
    ]


def test_a_stratum_out_of_order_is_named_unreadable_by_the_full_audit_and_refused_by_a_seal(
    history, attack, superuser
):
    # the top stratum's first position (the root's, 1) made 255: its records out of order
    attack(
        "UPDATE heads_map_strata SET nodes = set_byte(nodes, 0, 255) "
        "WHERE tenant_id = :t AND prefix = ''::bytea",
        t=history.tenant,
    )
    found = _of(history.audit("full"), "map_invalid")
    assert [(f["log_index"], "unreadable" in f["detail"]) for f in found] == [
        (_last_commit(superuser, history.tenant), True)
    ]
    history.amend(history.skills[2], 1, "writes safe Rust")
    with pytest.raises(IntegrityViolation) as refused:  # the seal reads the stratum
        tlog.seal(history.tenant)
    assert refused.value.extensions["finding"] == "map_invalid"
    again = _of(history.audit("incremental"), "map_invalid")
    assert again and all("unreadable" in f["detail"] for f in again)


def test_a_node_rewritten_before_a_seal_makes_a_wrong_commit_the_full_audit_names(
    history, attack, superuser
):
    # the root's two child hashes rewritten: the next seal builds on them
    attack(
        tampering.MAP_ROOT_CHILDREN_FLIPPED,
        t=history.tenant,
    )
    history.amend(history.skills[2], 1, "writes safe Rust")
    tlog.seal(history.tenant)
    commit = _last_commit(superuser, history.tenant)
    found = _of(history.audit("full"), "map_invalid")
    at_commit = [f for f in found if f["log_index"] == commit and "root" in f["detail"]]
    assert at_commit and at_commit[0]["entity_id"] == history.skills[2]


def test_a_status_rewritten_in_entity_heads_is_named_and_not_committed(history, attack):
    attack(
        "UPDATE entity_heads SET status = 'certified' WHERE tenant_id = :t AND entity_id = "
        "CAST(:e AS uuid)",
        t=history.tenant,
        e=history.skills[2],
    )
    history.amend(history.skills[0], 2, "writes even more idiomatic Python")
    tlog.seal(history.tenant)
    run = history.audit("full")
    named = [f for f in run["findings"] if f["entity_id"] == history.skills[2]]
    assert named and all(f["kind"] != "map_invalid" for f in named), run["findings"]
    assert _of(run, "map_invalid") == []


def test_the_map_commit_dropped_from_the_log_is_named(history, attack, superuser):
    commit = _last_commit(superuser, history.tenant)
    attack("DELETE FROM log_entries WHERE tenant_id = :t AND idx = :i", t=history.tenant, i=commit)
    run = history.audit("full")
    assert any(f["log_index"] == commit for f in _of(run, "missing"))
    assert [f["log_index"] for f in _of(run, "map_invalid")] == [commit]


def test_a_changed_heads_leaf_rewritten_is_named_by_the_incremental_audit(
    history, attack, superuser
):
    history.audit("full")
    history.amend(history.skills[2], 1, "writes safe Rust")
    tlog.seal(history.tenant)
    key = heads_map.entity_key(__import__("uuid").UUID(history.skills[2]))
    attack(
        tampering.MAP_LEAF_FLIPPED,
        t=history.tenant,
        k=key,
    )
    found = _of(history.audit("incremental"), "map_invalid")
    assert [(f["entity_id"], f["log_index"]) for f in found] == [
        (history.skills[2], _last_commit(superuser, history.tenant))
    ]


@pytest.mark.parametrize("range_size", [copyread.RANGE, 2])
def test_a_wrong_commit_before_the_latest_is_named_by_the_incremental_audit(
    history, superuser, monkeypatch, range_size
):
    monkeypatch.setattr(copyread, "RANGE", range_size)
    history.audit("full")
    history.amend(history.skills[2], 1, "writes safe Rust")
    test_compiled_twin.seal_with_a_wrong_root(monkeypatch, history.tenant)
    wrong = _last_commit(superuser, history.tenant)
    history.amend(history.skills[0], 2, "writes even more idiomatic Python")
    tlog.seal(history.tenant)
    assert _last_commit(superuser, history.tenant) > wrong  # not the latest one
    found = _of(history.audit("incremental"), "map_invalid")
    assert [(f["entity_id"], f["log_index"]) for f in found] == [(history.skills[2], wrong)]
    assert "another root" in found[0]["detail"]


def test_the_full_audit_names_the_same_wrong_commit(history, superuser, monkeypatch):
    history.amend(history.skills[2], 1, "writes safe Rust")
    test_compiled_twin.seal_with_a_wrong_root(monkeypatch, history.tenant)
    wrong = _last_commit(superuser, history.tenant)
    history.amend(history.skills[0], 2, "writes even more idiomatic Python")
    tlog.seal(history.tenant)
    found = _of(history.audit("full"), "map_invalid")
    assert [(f["entity_id"], f["log_index"]) for f in found] == [(history.skills[2], wrong)]


def _ids_on_sides(sides: str) -> Iterator[uuid.UUID]:
    """New entity ids whose map keys take the root's sides in ``sides`` ("0" left, "1" right)."""
    for side in sides:
        while True:
            candidate = ids.new_entity_id()
            if heads_map.entity_key(candidate)[0] >> 7 == int(side):
                yield candidate
                break


@pytest.fixture(params=["011", "111", "000", "100"])
def sided_history(request, database_url, tenant, monkeypatch) -> History:
    """The three skills' keys on chosen sides: a side with no key has the empty hash, which
    the rewrite below makes a child the stored map does not hold."""
    chosen = _ids_on_sides(request.param)
    monkeypatch.setattr(writes, "new_entity_id", lambda: next(chosen))
    return make_history(tenant)


def test_commits_built_on_a_rewritten_node_are_named_by_the_incremental_audit(
    sided_history, attack, superuser
):
    history = sided_history
    history.audit("full")
    # the root's two child hashes rewritten: every later seal builds on them, so the stored
    # map no longer rebuilds the last verified commit and the map is replayed from the log
    attack(
        tampering.MAP_ROOT_CHILDREN_FLIPPED,
        t=history.tenant,
    )
    history.amend(history.skills[2], 1, "writes safe Rust")
    tlog.seal(history.tenant)
    first = _last_commit(superuser, history.tenant)
    history.amend(history.skills[0], 2, "writes even more idiomatic Python")
    tlog.seal(history.tenant)
    second = _last_commit(superuser, history.tenant)
    incremental = _of(history.audit("incremental"), "map_invalid")
    at_roots = [(f["entity_id"], f["log_index"]) for f in incremental if "root" in f["detail"]]
    # the second commit is wrong too when its key is on the root's rewritten side
    assert at_roots[0] == (history.skills[2], first)
    assert all(f["log_index"] >= first for f in incremental)
    full = _of(history.audit("full"), "map_invalid")
    assert at_roots == [
        (f["entity_id"], f["log_index"])
        for f in full
        if "root" in f["detail"] and first <= f["log_index"] <= second
    ]


def _pointer_towards(superuser, tenant: str, key: bytes) -> int:
    """Where, in the top stratum's row, the depth-1 node on ``key``'s side holds its pointer
    towards ``key`` (a record: position, 0x03, left hash, right hash)."""
    with superuser.connect() as conn:
        row = bytes(
            conn.execute(
                text("SELECT nodes FROM heads_map_strata WHERE tenant_id = :t AND prefix = ''"),
                {"t": tenant},
            ).scalar_one()
        )
    at = next(i for i in range(0, len(row), 66) if row[i] == 2 + (key[0] >> 7))
    assert row[at + 1] == 3, "an interior node: the key shares its side with another"
    return at + 2 + 32 * (key[0] >> 6 & 1)


@pytest.mark.parametrize("sided_history", ["111", "011"], indirect=True)
def test_a_pointer_on_a_changed_heads_path_rewritten_is_named_by_the_incremental_audit(
    sided_history, attack, superuser, monkeypatch
):
    """Rewritten after the seal, a node's pointer towards a changed head is read by no proof
    (a proof reads the siblings) and by no root rebuilt from the changed keys: before, only
    a full audit named it. Now the incremental audit names the head and the node whose
    pointer no longer names the node below it, compiled and pure alike."""
    history = sided_history
    history.audit("full")
    history.amend(history.skills[2], 1, "writes safe Rust")
    tlog.seal(history.tenant)
    key = heads_map.entity_key(uuid.UUID(history.skills[2]))
    attack(
        "UPDATE heads_map_strata SET nodes = set_byte(nodes, :b, get_byte(nodes, :b) # 1) "
        "WHERE tenant_id = :t AND prefix = ''",
        t=history.tenant,
        b=_pointer_towards(superuser, history.tenant, key),
    )
    _, *found = test_compiled_twin.incremental_both_ways(history.tenant, monkeypatch)
    commit = _last_commit(superuser, history.tenant)
    assert [(f["kind"], f["entity_id"], f["log_index"]) for f in found] == [
        ("map_invalid", history.skills[2], commit)
    ], found
    assert "node at depth 0" in found[0]["detail"]  # the root's pointer to the rewritten node
    assert _of(history.audit("full"), "map_invalid"), "the full audit names it too"


@pytest.mark.parametrize("range_size", [copyread.RANGE, 2, 3])
def test_a_clean_incremental_range_of_several_commits_has_no_map_finding(
    history, monkeypatch, range_size
):
    monkeypatch.setattr(copyread, "RANGE", range_size)  # commits inside and across ranges
    history.audit("full")
    for skill, version in zip(history.skills, (2, 2, 1), strict=True):  # the second certified
        history.amend(skill, version, f"writes more than v{version}")
        tlog.seal(history.tenant)
    certification.certify(history.certifier, "skills", history.skills[2], None, "r")
    tlog.seal(history.tenant)
    assert history.audit("incremental")["findings"] == []
    assert history.audit("full")["findings"] == []


@pytest.mark.parametrize("range_size", [copyread.RANGE, 2])
def test_strata_missing_and_planted_among_many_are_named_node_by_node_in_address_order(
    history, attack, superuser, monkeypatch, range_size
):
    # the stored strata and the recomputed ones are merged as they come, by prefix: a
    # stratum deleted in the middle and the last one, and one planted among them (a prefix
    # of 32 bytes: no key of a few dozen reaches depth 256)
    monkeypatch.setattr(copyread, "RANGE", range_size)  # the strata read in many ranges
    skills = list(history.skills)
    for n in range(60):  # ~14 pairs of keys sharing 7 bits: strata below the top one
        doc = writes.create(
            history.author,
            "skills",
            {"name": f"skill {n}", "description": "a skill", "category": "technical"},
            str(uuid.uuid4()),
        )
        skills.append(doc.body["identity"]["id"])
    tlog.seal(history.tenant)
    with superuser.connect() as conn:
        rows = conn.execute(
            text("SELECT prefix, nodes FROM heads_map_strata WHERE tenant_id = :t"),
            {"t": history.tenant},
        ).all()
    strata = sorted((bytes(prefix), bytes(nodes)) for prefix, nodes in rows)
    assert len(strata) >= 3
    gone = [strata[len(strata) // 2], strata[-1]]
    planted = (strata[1][0].ljust(32, b"\xff"), strata[len(strata) // 2][1])
    for prefix, _ in gone:
        attack("DELETE FROM heads_map_strata WHERE tenant_id = :t AND prefix = :p",
               t=history.tenant, p=prefix)  # fmt: skip
    attack("INSERT INTO heads_map_strata (tenant_id, prefix, nodes) VALUES (:t, :p, :n)",
           t=history.tenant, p=planted[0], n=planted[1])  # fmt: skip
    owners = {heads_map.entity_key(uuid.UUID(skill)): skill for skill in skills}
    nodes = sorted(
        (map_strata.address(prefix, position), node)
        for prefix, data in [*gone, planted]
        for position, node in map_strata.decode(data).items()
    )
    commit = _last_commit(superuser, history.tenant)
    want = {}  # the run reports the first finding of each (kind, entity, index) alone
    for (depth, _), node in nodes:
        owner = owners[node[1:33]] if node[:1] == sparse_merkle.LEAF else None
        detail = f"the stored map node at depth {depth} differs from the one the log gives"
        want.setdefault(owner, (commit, detail, owner))
    found = test_compiled_twin.audit_both_ways(history.tenant, monkeypatch)
    assert [(f["log_index"], f["detail"], f["entity_id"]) for f in found] == [*want.values()]
    assert {f["kind"] for f in found} == {"map_invalid"}
