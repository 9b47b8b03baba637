"""The full audit with the compiled heads map (``plant_map_native``) and with its pure-Python
twin (``map_memory.PureMap``) finds the same things in the same order on every attack: those
the parts' test makes (the log, its receipts, checkpoints and certificates) and those on the
map itself (its stored nodes rewritten, deleted, planted, misaddressed; a commit
dropped; a head's status rewritten), with the stored nodes read in ranges of the default size
and of two nodes. So does the incremental audit with the compiled map walks
(``map_rebuild``: the root at each commit rebuilt, the changed heads proven) and with their
twins, on the same attacks made before or after the seal it audits, on a wrong commit before
the latest, and past a commit that set no head (not walked again). The insider's matrix is
held to the same in tests/insider."""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import plant_map_native
import pytest

from shared import tlog
from shared.audit import runs
from shared.errors import IntegrityViolation
from shared.integrity import heads_map, map_memory
from shared.storage import copyread, tree
from shared.storage.engine import database
from tests.audit import test_parts
from tests.support import tampering


class _Counted:
    """The extension, its row loops (``native_rows``, the COPY reader; the versions the
    entries pass's ``version_rows`` took in itself; the receipts pass's rows) and the incremental
    audit's map walks (``map_rebuild``) counted as called."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        found = getattr(plant_map_native, name)
        if name not in ("copy_messages", "skill_key", "mth", "heads_to_check", "pruned_root",
                        "proven", "version_rows", "receipt_rows"):  # fmt: skip
            return found

        def counted(*args: Any) -> Any:
            self.calls[name] += 1
            result = found(*args)
            if name == "version_rows":  # the versions it took in itself
                self.calls["versions taken"] += result[0] - args[2]
            if name == "receipt_rows" and result is not None:  # answered, not left to Python
                self.calls["receipt batches compared"] += 1
            return result

        return counted


def audit_both_ways(tenant: str, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """A full audit's findings with the compiled map and row loops, asserted equal to the
    pure twins' on the same log (after a first run, whose seal may still append to an
    attacked log)."""
    assert map_memory.NATIVE is not None, "native/ is not built: `make` installs it"
    made: list[type] = []
    new = map_memory.new

    def recorded(pure: bool = False) -> map_memory.MemoryMap:
        memory = new(pure)
        made.append(type(memory))
        return memory

    monkeypatch.setattr(map_memory, "new", recorded)
    runs._audit(tenant, "full")
    native = _Counted()
    with monkeypatch.context() as counted:
        counted.setattr(map_memory, "NATIVE", native)
        compiled = runs._audit(tenant, "full")["findings"]
    with monkeypatch.context() as pure:
        pure.setattr(map_memory, "NATIVE", None)
        twin = runs._audit(tenant, "full")["findings"]
    assert made[1:] == [plant_map_native.Tree, map_memory.PureMap]
    assert native.calls["copy_messages"] and native.calls["heads_to_check"], native.calls
    # the receipts pass's rows, compiled: unless the log's counter says it has none
    with database().transaction(tenant) as conn:
        size = tree.log_size(conn)
    assert native.calls["receipt batches compared"] or not size, native.calls
    # the entries pass's versions, compiled: some taken by the C, unless an entry is missing
    # (from the gap on, Python takes every row of the range: a small log is one range)
    missing = any(f["kind"] == "missing" for f in compiled)
    assert native.calls["version_rows"] and (native.calls["versions taken"] or missing), (
        native.calls
    )
    assert compiled == twin
    return compiled


@pytest.mark.parametrize(
    "tamper",
    test_parts.test_every_attack_is_found_alike_by_parts_and_merge.pytestmark[0].args[1],
    ids=lambda f: f.__name__.strip("_"),
)
def test_every_log_attack_is_found_alike_compiled_and_pure(
    history, attack, entry_indices, superuser, tamper, monkeypatch
):
    history.amend(history.skills[2], 1, "writes Rust well")
    tlog.seal(history.tenant)
    kinds = tamper(history, attack, entry_indices, superuser)
    found = audit_both_ways(history.tenant, monkeypatch)
    assert kinds <= {f["kind"] for f in found}, found


def _leaf_flipped(history, attack) -> None:
    key = heads_map.entity_key(uuid.UUID(history.skills[0]))
    attack(tampering.MAP_LEAF_FLIPPED, t=history.tenant, k=key)


def _root_flipped(history, attack) -> None:
    attack(tampering.MAP_ROOT_CHILDREN_FLIPPED, t=history.tenant)


def _stratum_deleted(history, attack) -> None:
    attack("DELETE FROM heads_map_strata WHERE tenant_id = :t AND prefix = ''::bytea",
           t=history.tenant)  # fmt: skip


def _stratum_planted(history, attack) -> None:
    attack("INSERT INTO heads_map_strata (tenant_id, prefix, nodes) SELECT tenant_id, "
           "'\\x0000000000'::bytea, nodes FROM heads_map_strata WHERE tenant_id = :t "
           "AND prefix = ''::bytea", t=history.tenant)  # fmt: skip


def _positions_out_of_order(history, attack) -> None:
    attack("UPDATE heads_map_strata SET nodes = set_byte(nodes, 0, 255) "
           "WHERE tenant_id = :t AND prefix = ''::bytea", t=history.tenant)  # fmt: skip


def _commit_dropped(history, attack) -> None:
    attack("DELETE FROM log_entries WHERE tenant_id = :t AND idx = (SELECT max(idx) FROM "
           "log_entries WHERE tenant_id = :t AND entry_type = 'map_commit')",
           t=history.tenant)  # fmt: skip


def _changed_leaf_flipped(history, attack) -> None:
    key = heads_map.entity_key(uuid.UUID(history.skills[2]))  # the head the test changes
    attack(tampering.MAP_LEAF_FLIPPED, t=history.tenant, k=key)


def _status_rewritten(history, attack) -> None:
    attack("UPDATE entity_heads SET status = 'certified' WHERE tenant_id = :t AND entity_id = "
           "CAST(:e AS uuid)", t=history.tenant, e=history.skills[2])  # fmt: skip


MAP_ATTACKS: list[Callable[..., None]] = [
    _leaf_flipped,
    _root_flipped,
    _stratum_deleted,
    _stratum_planted,
    _positions_out_of_order,
    _commit_dropped,
    _status_rewritten,
]


@pytest.mark.parametrize("range_size", [copyread.RANGE, 2])
@pytest.mark.parametrize("tamper", MAP_ATTACKS, ids=lambda f: f.__name__.strip("_"))
def test_every_map_attack_is_found_alike_compiled_and_pure(
    history, attack, tamper, range_size, monkeypatch
):
    monkeypatch.setattr(copyread, "RANGE", range_size)
    tamper(history, attack)
    found = audit_both_ways(history.tenant, monkeypatch)
    assert found, "each attack is named"


def test_a_clean_log_is_clean_both_ways(history, monkeypatch):
    assert audit_both_ways(history.tenant, monkeypatch) == []


def incremental_both_ways(tenant: str, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """An incremental audit's findings with the compiled map walks, asserted equal to the
    pure twins' on the same range (``runs._audit`` logs no report: both start where the last
    clean run ended); whether the walks ran is returned in the calls counted."""
    runs._audit(tenant, "incremental")  # its seal may still append to an attacked log
    native = _Counted()
    with monkeypatch.context() as counted:
        counted.setattr(map_memory, "NATIVE", native)
        compiled = runs._audit(tenant, "incremental")
    with monkeypatch.context() as pure:
        pure.setattr(map_memory, "NATIVE", None)
        twin = runs._audit(tenant, "incremental")
    assert compiled["verified_from"] == twin["verified_from"]
    assert compiled["findings"] == twin["findings"]
    return [{"calls": native.calls}, *compiled["findings"]]


def seal_with_a_wrong_root(monkeypatch: pytest.MonkeyPatch, tenant: str) -> None:
    """One seal whose commit holds a root off by one bit, its nodes written right: what a
    sealer that signs a map it did not build would log (the next seal builds on the nodes)."""
    made = heads_map.MapCommit

    def wrong(size: int, root: bytes, sealed_at: str) -> heads_map.MapCommit:
        return made(size, bytes([root[0] ^ 1]) + root[1:], sealed_at)

    with monkeypatch.context() as patched:
        patched.setattr(heads_map, "MapCommit", wrong)
        tlog.seal(tenant)


@pytest.mark.parametrize("before_seal", [True, False], ids=["before-seal", "after-seal"])
@pytest.mark.parametrize(
    "tamper", [*MAP_ATTACKS, _changed_leaf_flipped], ids=lambda f: f.__name__.strip("_")
)
def test_every_map_attack_is_found_alike_by_the_incremental_audit_compiled_and_pure(
    history, attack, tamper, before_seal, monkeypatch
):
    history.audit("full")
    if before_seal:
        tamper(history, attack)
    history.amend(history.skills[2], 1, "writes safe Rust")
    with contextlib.suppress(IntegrityViolation):  # a seal that read the attacked map refuses:
        tlog.seal(history.tenant)  # the audit's own seal names it
    if not before_seal:
        tamper(history, attack)
    incremental_both_ways(history.tenant, monkeypatch)


def test_a_clean_range_and_a_wrong_commit_are_found_alike_incremental_compiled_and_pure(
    history, monkeypatch
):
    history.audit("full")
    history.amend(history.skills[2], 1, "writes safe Rust")
    tlog.seal(history.tenant)
    calls, *found = incremental_both_ways(history.tenant, monkeypatch)
    assert found == [] and calls["calls"]["pruned_root"] == 2 and calls["calls"]["proven"] == 1
    history.amend(history.skills[2], 2, "writes safe and fast Rust")
    seal_with_a_wrong_root(monkeypatch, history.tenant)
    history.amend(history.skills[0], 2, "writes even more idiomatic Python")
    tlog.seal(history.tenant)
    calls, *found = incremental_both_ways(history.tenant, monkeypatch)
    assert [f["entity_id"] for f in found] == [history.skills[2]], found
    assert calls["calls"]["pruned_root"] == 4  # the last verified commit, then three


def test_a_commit_that_set_no_head_is_not_walked_again_compiled_and_pure(history, monkeypatch):
    history.audit("full")
    history.audit("incremental")  # its report, sealed alone: a commit that sets no head
    tlog.seal(history.tenant)
    history.amend(history.skills[2], 1, "writes safe Rust")
    tlog.seal(history.tenant)
    calls, *found = incremental_both_ways(history.tenant, monkeypatch)
    assert found == [] and calls["calls"]["pruned_root"] == 2  # the base, then the amend's
