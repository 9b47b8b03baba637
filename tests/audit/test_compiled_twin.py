"""The full audit with the compiled heads map (``plant_map_native``) and with its pure-Python
twin (``map_memory.PureMap``) finds the same things in the same order on every attack: those
the parts' test makes (the log, its receipts, checkpoints and certificates) and those on the
map itself (its stored nodes rewritten, deleted, planted, misaddressed; a commit
dropped; a head's status rewritten), with the stored nodes read in ranges of the default size
and of two nodes. The insider's matrix is held to the same in tests/insider."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import plant_map_native
import pytest

from shared import tlog
from shared.audit import runs
from shared.integrity import heads_map, map_memory
from shared.storage import copyread
from tests.audit import test_parts
from tests.support import tampering


class _Counted:
    """The extension, its row loops (``native_rows``, the COPY reader) counted as called."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        found = getattr(plant_map_native, name)
        if name not in ("copy_messages", "skill_key", "mth", "heads_to_check"):
            return found

        def counted(*args: Any) -> Any:
            self.calls[name] += 1
            return found(*args)

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
