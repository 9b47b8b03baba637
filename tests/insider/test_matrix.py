"""The insider's attack matrix (issue 22): each attack, by table and column, made as the
PostgreSQL superuser on a fresh fixture tenant, then an incremental audit, a full audit and
another incremental audit; the finding each must name is asserted field by field (kind,
section, field, entity, version, index), in every audit that can see it. The table of
attack -> finding is printed at the end (tests/support/reliability_table.py).

``make test-insider`` runs the whole matrix; the default suite runs the ``insider_short``
slice (the rest is marked slow)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shared.audit import versions
from tests.insider import cases_catalog, cases_ledger
from tests.insider.attacks import Case, catalog, replace_function, restore, sql
from tests.insider.conftest import Tenant
from tests.support.reliability_table import record
from tests.support.tampering import rewrite_body


def _head(t: Tenant, entity: str) -> tuple[int, int]:
    version, index = t.one(
        "SELECT version, log_index FROM entity_heads WHERE tenant_id = :t "
        "AND entity_id = CAST(:e AS uuid)",
        e=entity,
    )
    return int(version), int(index)


def _replay(t: Tenant, attack: Callable[..., None]) -> None:
    """Another tenant's entry (its bytes, digests and leaf hash) appended to this log."""
    other = t.one(
        "SELECT tenant_id, idx FROM log_entries WHERE tenant_id <> :t "
        "AND entry_type = 'version' ORDER BY tenant_id, idx LIMIT 1"
    )
    attack(
        "INSERT INTO log_entries (tenant_id, idx, entry_type, kind, entity_id, version, body, "
        "digest, leaf_hash, prev_digest, field_hashes, field_digests, actor) SELECT :t, "
        "(SELECT size FROM log_heads WHERE tenant_id = :t), entry_type, kind, entity_id, "
        "version, body, digest, leaf_hash, prev_digest, field_hashes, field_digests, actor "
        "FROM log_entries WHERE tenant_id = :o AND idx = :i",
        t=t.name,
        o=other[0],
        i=other[1],
    )
    attack("UPDATE log_heads SET size = size + 1 WHERE tenant_id = :t", t=t.name)


def _broken_latest(t: Tenant, attack: Callable[..., None]) -> None:
    """The newest checkpoint's signature broken, and a body under it (past the one before)
    edited, its digest and leaf hash made to match."""
    attack(
        "UPDATE checkpoints SET note = replace(note, '\u2014 ', '\u2014 x') "
        "WHERE tenant_id = :t AND size = (SELECT max(size) FROM checkpoints WHERE tenant_id = :t)",
        t=t.name,
    )
    # Since certifications seal too, the one before the latest is at 35: the body past it is
    # skill 2's certified version 3 (skill 8's version 2 is now under the valid 32 as well).
    index = t.index(t.skills[2], 3)
    assert 35 <= index < 38, index
    rewrite_body(attack, t.name, index, "does 2 well", "does 2 badly")


def _swap(t: Tenant, attack: Callable[..., None]) -> None:
    """Two neighbouring entries (skills 9 and 10, version 2) exchange indexes, and so do
    their stored leaf hashes: each row still agrees with its leaf."""
    a, b = t.index(t.skills[9], 2), t.index(t.skills[10], 2)
    for table, where in (("log_entries", ""), ("log_nodes", " AND level = 0")):
        move = f"UPDATE {table} SET idx = :to WHERE tenant_id = :t AND idx = :at{where}"
        attack(move, t=t.name, at=a, to=10**9)
        attack(move, t=t.name, at=b, to=a)
        attack(move, t=t.name, at=10**9, to=b)


RUN_ID = "(SELECT id FROM audit_runs WHERE tenant_id = :t AND status = 'completed' LIMIT 1)"

CASES = [
    # entity_heads
    Case(
        "entity_heads", "a head row deleted",
        sql("DELETE FROM entity_heads WHERE tenant_id = :t AND entity_id = CAST(:e AS uuid)",
             e=lambda t: t.skills[3]),
        lambda t: dict(kind="missing", section="entity_heads", entity_id=t.skills[3], version=2,
                       log_index=t.index(t.skills[3], 2)),
        incremental=False, short=True,
    ),
    Case(
        "entity_heads", "a head row moved to another tenant",
        sql("UPDATE entity_heads SET tenant_id = 't-elsewhere' WHERE tenant_id = :t "
             "AND entity_id = CAST(:e AS uuid)", e=lambda t: t.skills[4]),
        lambda t: dict(kind="missing", section="entity_heads", entity_id=t.skills[4], version=2),
        incremental=False,
    ),
    Case(
        "entity_heads", "name column changed",
        sql("UPDATE entity_heads SET name = 'forged' WHERE tenant_id = :t "
             "AND entity_id = CAST(:e AS uuid)", e=lambda t: t.skills[5]),
        lambda t: dict(kind="altered", section="entity_heads", field="name",
                       entity_id=t.skills[5], version=2),
        incremental=False,
    ),
    Case(
        "entity_heads", "a head moved back from v5 to v2",
        sql("UPDATE entity_heads SET version = 2, log_index = :i WHERE tenant_id = :t "
             "AND entity_id = CAST(:e AS uuid)", e=lambda t: t.skills[0],
             i=lambda t: t.index(t.skills[0], 2)),
        lambda t: dict(kind="rollback", section="entity_heads", field="version",
                       entity_id=t.skills[0], version=2, ledger_version=5),
        incremental=False, short=True, never=("inserted",),
    ),
    # log_heads
    Case(
        "log_heads", "the log's counter shrunk by two",
        sql("UPDATE log_heads SET size = size - 2 WHERE tenant_id = :t"),
        lambda t: dict(kind="rollback", section="log_heads", field="size"),
        short=True, never=("inserted",),
    ),
    # log_entries
    Case(
        "log_entries", "a body's description rewritten (digest, leaf kept)",
        sql("UPDATE log_entries SET body = convert_to(replace(convert_from(body, 'UTF8'), "
             "'does 6 well', 'does 6 badly'), 'UTF8') WHERE tenant_id = :t AND idx = :i",
             i=lambda t: t.index(t.skills[6], 2)),
        lambda t: dict(kind="altered", entity_id=t.skills[6], version=2,
                       log_index=t.index(t.skills[6], 2), field=None,
                       field_unnamed=versions.UNNAMED),
        incremental=False, short=True,
    ),
    Case(
        "log_entries", "an entry replayed from another tenant",
        _replay,
        lambda t: dict(kind="altered", section="row", field="tenant_id", log_index=t.size()),
        short=True,
    ),
    Case(
        "log_entries", "a certificate row's kind column changed",
        sql("UPDATE log_entries SET kind = 'agent' WHERE tenant_id = :t AND idx = :i",
             i=lambda t: t.index(t.skills[1], 2, "certificate")),
        lambda t: dict(kind="altered", section="row", field="kind", entity_id=t.skills[1],
                       log_index=t.index(t.skills[1], 2, "certificate")),
        incremental=False, short=True,
    ),
    Case(
        "log_entries", "two entries swapped with their leaf hashes",
        _swap,
        lambda t: dict(kind="reordered", entity_id=t.skills[9], version=2,
                       log_index=t.index(t.skills[10], 2), belongs_at=t.index(t.skills[9], 2)),
        incremental=False, never=("checkpoint_invalid",),
    ),
    # log_nodes
    Case(
        "log_nodes", "a level-5 node deleted",
        sql("DELETE FROM log_nodes WHERE tenant_id = :t AND level = 5 AND idx = 0"),
        lambda t: dict(kind="missing", section="log_nodes", level=5, node_index=0),
        short=True,
    ),
    Case(
        "log_nodes", "a stray node past the log's size",
        sql("INSERT INTO log_nodes (tenant_id, level, idx, hash) "
             "VALUES (:t, 0, 100, sha256('stray'))"),
        lambda t: dict(kind="inserted", section="log_nodes", level=0, node_index=100),
    ),
    Case(
        "log_nodes", "a level-0 node altered (the entry's bytes intact)",
        sql("UPDATE log_nodes SET hash = sha256('other') WHERE tenant_id = :t AND level = 0 "
             "AND idx = 11"),
        lambda t: dict(kind="altered", section="log_nodes", level=0, node_index=11),
        incremental=False,
    ),
    # checkpoints
    # Checkpoints at 16, 32, 35 and 38: each seal (the first, each certification's, the
    # baseline audit's) first appends a map commit, so the first covers 15 skills and its map
    # commit, and the audit's covers 38 (its report, index 38, follows it).
    Case(
        "checkpoints", "older checkpoints deleted",
        sql("DELETE FROM checkpoints WHERE tenant_id = :t AND size = 16"),
        lambda t: dict(kind="missing", section="checkpoints", checkpoint_size=16),
    ),
    Case(
        "checkpoints", "two checkpoints' signatures broken",
        sql("UPDATE checkpoints SET note = replace(note, '\u2014 ', '\u2014 x') "
             "WHERE tenant_id = :t"),
        lambda t: dict(kind="checkpoint_invalid", checkpoint_size=16),
        # every checkpoint's signature is broken: now four, the certifications' too
        extra=tuple(dict(kind="checkpoint_invalid", checkpoint_size=n) for n in (32, 35, 38)),
    ),
    Case(
        "checkpoints", "the latest checkpoint broken and a body edited under it",
        _broken_latest,
        lambda t: dict(kind="altered", entity_id=t.skills[2], version=3,
                       log_index=t.index(t.skills[2], 3), field=None),
        short=True,
        extra=(dict(kind="checkpoint_invalid", checkpoint_size=38),),
    ),
    # audit_runs
    Case(
        "audit_runs", "the audit history deleted",
        sql("DELETE FROM audit_runs WHERE tenant_id = :t"),
        lambda t: dict(kind="missing", section="audit_runs", entity_id=t.baseline["id"]),
        short=True,
    ),
    Case(
        "audit_runs", "verified_to bumped",
        sql(f"UPDATE audit_runs SET verified_to = 10000 WHERE tenant_id = :t AND id = {RUN_ID}"),
        lambda t: dict(kind="altered", section="audit_runs", field="verified_to",
                       entity_id=t.baseline["id"]),
    ),
    Case(
        "audit_runs", "a run's finding count rewritten",
        sql(f"UPDATE audit_runs SET finding_count = 3, findings = '[1, 2, 3]' "
             f"WHERE tenant_id = :t AND id = {RUN_ID}"),
        lambda t: dict(kind="altered", section="audit_runs", field="finding_count",
                       entity_id=t.baseline["id"]),
    ),
    # the database's own defences
    Case(
        "catalog", "append-only trigger disabled",
        catalog("ALTER TABLE log_entries DISABLE TRIGGER log_entries_append_only"),
        lambda t: dict(kind="trigger_disabled", section="database",
                       field="log_entries.log_entries_append_only"),
        short=True,
        undo=catalog("ALTER TABLE log_entries ENABLE TRIGGER log_entries_append_only"),
    ),
    Case(
        "catalog", "row-level security not forced",
        catalog("ALTER TABLE log_nodes NO FORCE ROW LEVEL SECURITY"),
        lambda t: dict(kind="rls_disabled", section="database", field="log_nodes"),
        undo=catalog("ALTER TABLE log_nodes FORCE ROW LEVEL SECURITY"),
    ),
    Case(
        "catalog", "a permissive policy added",
        catalog("CREATE POLICY open ON checkpoints USING (true)"),
        lambda t: dict(kind="rls_disabled", section="database", field="checkpoints.open"),
        undo=catalog("DROP POLICY open ON checkpoints"),
    ),
    Case(
        "catalog", "log_entries renamed and replaced by a view",
        catalog("ALTER TABLE log_entries RENAME TO log_entries_real",
                 "CREATE VIEW log_entries AS SELECT * FROM log_entries_real",
                 "GRANT SELECT, INSERT ON log_entries TO plant_app"),
        lambda t: dict(kind="table_replaced", section="database", field="log_entries"),
        short=True,
        undo=catalog("DROP VIEW log_entries",
                      "ALTER TABLE log_entries_real RENAME TO log_entries"),
    ),
    Case(
        "catalog", "a rule on checkpoints",
        catalog("CREATE RULE keep_none AS ON INSERT TO checkpoints DO INSTEAD NOTHING"),
        lambda t: dict(kind="shadowed", section="database", field="checkpoints.keep_none"),
        undo=catalog("DROP RULE keep_none ON checkpoints"),
    ),
    Case(
        "catalog", "the refuse-change function replaced",
        replace_function("plant_refuse_change()",
                          "CREATE OR REPLACE FUNCTION plant_refuse_change() RETURNS trigger "
                          "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$"),
        lambda t: dict(kind="function_changed", section="database",
                       field="public.plant_refuse_change()"),
        short=True,
        undo=restore("plant_refuse_change()"),
    ),
    Case(
        "catalog", "a function shadowing plant_nodes in another schema",
        catalog("CREATE SCHEMA shadow",
                 "CREATE FUNCTION shadow.plant_nodes(p_keys bigint[]) "
                 "RETURNS bytea LANGUAGE sql AS 'SELECT NULL::bytea'"),
        lambda t: dict(kind="shadowed", section="database",
                       field="shadow.plant_nodes(p_keys bigint[])"),
        undo=catalog("DROP SCHEMA shadow CASCADE"),
    ),
]  # fmt: skip


def _matches(finding: dict[str, Any], want: dict[str, Any]) -> bool:
    return all(finding.get(k) == v for k, v in want.items())


def _named(run: dict[str, Any], want: dict[str, Any], case: Case, when: str) -> None:
    found = run["findings"]
    if not want:  # a row that changes nothing the audit relies on: nothing to name
        assert found == [], (when, found)
        return
    assert any(_matches(f, want) for f in found), (when, want, found)
    wrong = [f for f in found if f["kind"] in case.never]
    assert not wrong, (when, "misnamed", wrong)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            c,
            id=f"{c.table}: {c.name}",
            marks=[
                pytest.mark.insider_short if c.short else pytest.mark.slow,
                *([pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []),
            ],
        )
        for c in CASES + cases_ledger.CASES + cases_catalog.CASES
    ],
)
def test_attack_is_named(case: Case, fixture_tenant: Tenant, attack, request) -> None:
    t = fixture_tenant
    want = case.expect(t)  # before the attack: what the ledger said
    case.attack(t, attack)
    try:
        first = t.audit("incremental")
        full = t.audit("full")
        later = t.audit("incremental")
    finally:
        if case.undo is not None:
            case.undo(t, attack)
    for expected in (want, *case.extra):
        if case.incremental:
            _named(first, expected, case, "incremental")
        _named(full, expected, case, "full")
        _named(later, expected, case, "the next incremental")
    shown = ", ".join(f"{k}={v}" for k, v in want.items() if k in ("kind", "section", "field"))
    shown = shown or "no finding (not evidence)"
    record(request.node, f"insider: {case.table}: {case.name}", 1, shown)
