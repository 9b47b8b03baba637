"""A full audit's ranges scanned in worker processes (``shared.audit.entries``) find exactly
what one process finds: the same findings in the same order, for a clean log and for each
attack, with every range two entries long so that chains, repeats and gaps cross ranges.
The workers read the audit's own snapshot, and a worker that fails fails the audit."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from sqlalchemy import text

from shared import audit, config, tlog
from shared.audit import entries
from shared.errors import ConfigurationError, ServiceUnavailable
from shared.registry import writes
from shared.storage.engine import database
from tests.support.tampering import rewrite_body


@pytest.fixture
def workers(pooled) -> list[entries.Scanned]:
    return pooled(entries, "scanned")


def _both(full_audit, history, parts: list[entries.Scanned]) -> tuple[list, list]:
    """(findings of one process, findings of two workers) on the same log."""
    alone = full_audit(history, 1)
    assert parts == []
    pooled = full_audit(history, 2)
    # two more: the first run's report, and the map commit of the seal that covers it
    size = pooled["verified_to"]
    assert [(p.low, p.high) for p in parts] == [(i, min(i + 2, size)) for i in range(0, size, 2)]
    assert pooled["summary"]["entries_verified"] == alone["summary"]["entries_verified"] + 2
    # The map check runs in the audit's own process either way, over a log that the first
    # run's seal grew by a map commit built on what the attack left: it finds the attack in
    # both runs, but names the commit each saw last. The passes the workers run are compared.
    maps = [[f for f in run["findings"] if f["kind"] == "map_invalid"] for run in (alone, pooled)]
    assert bool(maps[0]) == bool(maps[1]), maps
    return (
        [f for f in alone["findings"] if f["kind"] != "map_invalid"],
        [f for f in pooled["findings"] if f["kind"] != "map_invalid"],
    )


def test_a_clean_log_is_clean_from_workers(history, workers, full_audit):
    alone, pooled = _both(full_audit, history, workers)
    assert alone == pooled == []
    assert len(workers) == 5  # 10 entries (6, a run's report, 3 map commits), ranges of 2


def _relink(history, attack, entry_indices, digest: bytes | None) -> set[str]:
    """The first skill's version 2 (in the range after its version 1) linked to ``digest``."""
    second = entry_indices(history.tenant, history.skills[0])[1]
    attack(
        "UPDATE log_entries SET prev_digest = :d WHERE tenant_id = :t AND idx = :i",
        d=digest,
        t=history.tenant,
        i=second,
    )
    return {"chain_broken"}


def _forge_link(history, attack, entry_indices):
    return _relink(history, attack, entry_indices, hashlib.sha256(b"forged").digest())


def _drop_link(history, attack, entry_indices):
    return _relink(history, attack, entry_indices, None)


def _swap(attack, tenant: str, a: int, b: int) -> None:
    """Entries ``a`` and ``b`` trade log indexes."""
    for sql, params in (
        ("UPDATE log_entries SET idx = 999999999 WHERE tenant_id = :t AND idx = :a", {"a": a}),
        ("UPDATE log_entries SET idx = :a WHERE tenant_id = :t AND idx = :b", {"a": a, "b": b}),
        ("UPDATE log_entries SET idx = :b WHERE tenant_id = :t AND idx = 999999999", {"b": b}),
    ):
        attack(sql, t=tenant, **params)


def _edit_field(history, attack, entry_indices):
    first = entry_indices(history.tenant, history.skills[2])[0]
    rewrite_body(attack, history.tenant, first, "writes Rust", "writes Rust badly")
    return {"altered"}


def _delete_version(history, attack, entry_indices):
    first = entry_indices(history.tenant, history.skills[0])[0]
    attack("DELETE FROM log_entries WHERE tenant_id = :t AND idx = :i", t=history.tenant, i=first)
    return {"missing"}


def _swap_versions(history, attack, entry_indices):
    a, b = entry_indices(history.tenant, history.skills[0])[:2]  # in two ranges
    _swap(attack, history.tenant, a, b)
    return {"reordered"}


def _edit_digest_then_forge_link(history, attack, entry_indices):
    """Two findings in one range, the first inside it and the second at an entity's first
    version there (linked by the merge): named in log order all the same."""
    digest_of = entry_indices(history.tenant, history.skills[2])[0]
    link_of = entry_indices(history.tenant, history.skills[0])[1]
    assert digest_of // 2 == link_of // 2 and digest_of < link_of
    attack(
        "UPDATE log_entries SET digest = :d WHERE tenant_id = :t AND idx = :i",
        d=hashlib.sha256(b"other").digest(),
        t=history.tenant,
        i=digest_of,
    )
    _forge_link(history, attack, entry_indices)
    return {"altered", "chain_broken"}


def _edit_head(history, attack, entry_indices):
    attack(
        "UPDATE entity_heads SET status = 'deprecated' WHERE tenant_id = :t AND entity_id = "
        "CAST(:e AS uuid)",
        t=history.tenant,
        e=history.skills[0],
    )
    return {"altered"}


@pytest.mark.parametrize(
    "tamper",
    [
        _forge_link,
        _drop_link,
        _edit_field,
        _delete_version,
        _swap_versions,
        _edit_digest_then_forge_link,
        _edit_head,
    ],
)
def test_every_attack_is_found_alike_by_workers(
    history, attack, entry_indices, workers, tamper, full_audit
):
    amend = history.amend(history.skills[2], 1, "writes Rust well")
    assert amend.body["versioning"]["version"] == 2
    tlog.seal(history.tenant)
    kinds = tamper(history, attack, entry_indices)
    alone, pooled = _both(full_audit, history, workers)
    assert kinds <= {f["kind"] for f in alone}, alone
    assert pooled == alone


def test_workers_read_the_audits_snapshot(history, superuser):
    """A transaction importing the audit's exported snapshot sees what it sees, not a write
    committed after the export."""
    with database().transaction(history.tenant, snapshot=True) as conn:
        snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
        before = conn.execute(text("SELECT count(*) FROM log_entries")).scalar_one()
        writes.create(
            history.author,
            "skills",
            {"name": "Zig", "description": "x", "category": "technical"},
            str(uuid.uuid4()),
        )
        with database().transaction(history.tenant, shared_snapshot=snapshot) as other:
            assert other.execute(text("SELECT count(*) FROM log_entries")).scalar_one() == before
        with database().transaction(history.tenant, snapshot=True) as fresh:
            assert fresh.execute(text("SELECT count(*) FROM log_entries")).scalar_one() > before


@pytest.mark.parametrize("garbage", ["", "x'; DROP TABLE log_entries; --", "00000003-0000001B"])
def test_a_snapshot_id_that_is_not_one_is_refused_before_any_statement(
    history, garbage, sent_statements
):
    with (
        sent_statements() as sent,
        pytest.raises(ValueError, match="snapshot"),
        database().transaction(history.tenant, shared_snapshot=garbage),
    ):
        pass
    assert sent == []


def test_a_worker_that_fails_fails_the_audit(history, workers, monkeypatch, last_run_status):
    """Workers that cannot reach the database: the run is marked failed and the worker's
    503 raised in the audit's process (what the caller gets from an unreachable database),
    never a completed audit of the ranges that were read."""
    monkeypatch.setenv("PLANT_AUDIT_WORKERS", "2")
    config.settings.cache_clear()
    database().ping()  # this process keeps its engine; spawned workers read the broken URL
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(ServiceUnavailable, match="database is unavailable"):
        audit.run(history.auditor, {"mode": "full"})
    assert last_run_status(history.tenant) == "failed"


def _amend(history, entity_id: str, version: int) -> int:
    doc = history.amend(entity_id, version, f"as of version {version + 1}")
    return doc.body["audit_trail"]["log_index"]


def test_versions_sealed_out_of_order_are_found_alike(history, attack, workers, full_audit):
    """Rows swapped before the seal, so the tree itself holds an entity's version 3 in a
    range before its version 2: every leaf matches, the order is the finding."""
    target = history.skills[2]
    second = _amend(history, target, 1)
    _amend(history, history.skills[0], 2)
    third = _amend(history, target, 2)
    assert third // 2 != second // 2  # two ranges
    t = history.tenant
    _swap(attack, t, second, third)
    tlog.seal(t)
    alone, pooled = _both(full_audit, history, workers)
    assert "reordered" in {f["kind"] for f in alone}, alone
    assert pooled == alone


@pytest.fixture
def repeats_allowed(superuser):
    """The unique index on (tenant, entity, version) dropped for the test (it is what stops
    a repeat being written at all) and rebuilt after it, its repeats deleted first."""
    with superuser.begin() as conn:
        definition = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'log_entries_one_version'")
        ).scalar_one()
        conn.execute(text("DROP INDEX log_entries_one_version"))
    yield
    with superuser.begin() as conn:
        conn.execute(text("SET session_replication_role = replica"))
        conn.execute(
            text(
                "DELETE FROM log_entries AS e USING log_entries AS o WHERE e.tenant_id = "
                "o.tenant_id AND e.entity_id = o.entity_id AND e.version = o.version "
                "AND e.idx > o.idx"
            )
        )
        conn.execute(text(definition))


def test_a_first_version_sealed_twice_is_found_alike(
    history, attack, superuser, workers, repeats_allowed, full_audit
):
    """A copy of an entity's version 1 logged again, ranges later, and sealed: its leaf is
    in the tree, so only the entity's chain can tell."""
    t = history.tenant
    with superuser.connect() as conn:
        size = conn.execute(text("SELECT size FROM log_heads WHERE tenant_id = :t"), {"t": t})
        size = size.scalar_one()
    attack(
        "INSERT INTO log_entries (tenant_id, idx, entry_type, kind, entity_id, version, body, "
        "digest, leaf_hash, prev_digest, field_hashes, actor) SELECT tenant_id, :i, entry_type, "
        "kind, entity_id, version, body, digest, leaf_hash, prev_digest, field_hashes, actor "
        "FROM log_entries WHERE tenant_id = :t AND idx = 0",
        t=t,
        i=size,
    )
    attack("UPDATE log_heads SET size = size + 1 WHERE tenant_id = :t", t=t)
    tlog.seal(t)
    alone, pooled = _both(full_audit, history, workers)
    assert alone, "a version 1 logged twice went unnoticed"
    assert pooled == alone


def test_an_audit_below_the_threshold_stays_in_its_process(history, workers, monkeypatch):
    monkeypatch.setenv("PLANT_AUDIT_PARALLEL_FROM", "9")  # the log holds 8 (2 map commits)
    monkeypatch.setenv("PLANT_AUDIT_WORKERS", "2")
    config.settings.cache_clear()
    assert history.audit("full")["findings"] == []
    assert workers == []
    monkeypatch.setenv("PLANT_AUDIT_PARALLEL_FROM", "8")
    config.settings.cache_clear()
    assert history.audit("full")["findings"] == []
    assert len(workers) == 5  # 10 now: the first run's report and its seal's map commit


@pytest.mark.parametrize(
    ("value", "message"),
    [("0", "PLANT_AUDIT_WORKERS must be at least 1"), ("two", "must be an integer")],
)
def test_a_worker_count_that_is_not_one_is_refused(value, message):
    with pytest.raises(ConfigurationError, match=message):
        config.load({"PLANT_AUDIT_WORKERS": value})
    assert config.load({}).audit_workers == 2
