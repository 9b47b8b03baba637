"""Merkle proofs at N leaves: inclusion + consistency pairs served from the database (stored
subtree hashes, one query per proof) against the same proofs from an in-memory tree (the floor:
no database), and against pymerkle (InmemoryTree and SqliteTree) holding the same leaves, whose
roots are compared with ours (pymerkle hashes leaves as SHA-256(0x00 || data) and nodes as
SHA-256(0x01 || left || right), as RFC 9162 does)."""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench import common, seed
from bench.db import superuser

PER_READ = 100  # proofs of each kind per read in the batched line (a bundle reads 500)
TENANT_PREFIX = "big"  # shared with bench/audit.py: one seeded tenant per size


def sealed_tenant(size: int) -> tuple[str, float | None]:
    """The seeded tenant of ``size`` entries, sealed; (tenant, seconds the first seal took)."""
    from shared import tlog

    started = time.perf_counter()
    tenant = seed.seeded_tenant(TENANT_PREFIX, size)
    seeded = time.perf_counter() - started
    started = time.perf_counter()
    sealed = tlog.seal(tenant)
    took = time.perf_counter() - started
    if sealed.created:
        print(f"   seeded {size:,} entries in {seeded:.1f} s; sealed in {took:.1f} s", flush=True)
        _vacuum_nodes()
    return tenant, took if sealed.created else None


def _vacuum_nodes() -> None:
    """What autovacuum does soon after a seal's inserts: statistics, and the stored nodes'
    pages marked all-visible, so that a node read takes its hash from the primary key alone
    (migration 0026) as it would in a log sealed a while ago."""
    eng = superuser()
    with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) log_nodes"))
    eng.dispose()


def _bodies(tenant: str, size: int, batch: int = 20_000) -> Iterator[bytes]:
    eng = superuser()
    with eng.connect() as conn:
        for low in range(0, size, batch):
            rows = conn.execute(
                text(
                    "SELECT body FROM log_entries WHERE tenant_id = :t AND idx >= :a AND idx < :b "
                    "ORDER BY idx"
                ),
                {"t": tenant, "a": low, "b": min(size, low + batch)},
            )
            for (body,) in rows:
                yield bytes(body)
    eng.dispose()


def bench_proofs(size: int, count: int) -> list[dict[str, Any]]:
    from shared.integrity import merkle
    from shared.storage import tree
    from shared.storage.engine import database

    tenant, seal_seconds = sealed_tenant(size)
    with database().transaction(tenant) as conn:
        size = tree.latest_checkpoint(conn).size  # type: ignore[union-attr]  # and map commits
    rng = random.Random(seed.SEED)
    picks = [(rng.randrange(size), rng.randrange(1, size)) for _ in range(count)]

    def product() -> float:
        started = time.perf_counter()
        with database().transaction(tenant) as conn:
            reader = tree.DbNodes(conn)
            for index, old in picks:
                merkle.inclusion_proof(reader, index, size)
                merkle.consistency_proof(reader, old, size)
        return time.perf_counter() - started

    batches = [
        (
            [index for index, _ in picks[at : at + PER_READ]],
            [old for _, old in picks[at : at + PER_READ]],
        )
        for at in range(0, len(picks), PER_READ)
    ]

    def product_batched() -> float:
        started = time.perf_counter()
        with database().transaction(tenant) as conn:
            for _ in merkle.pipelined_proofs(tree.DbNodes(conn), batches, size):
                pass
        return time.perf_counter() - started

    def product_sequential() -> float:  # as bundles read: each batch's read, then its folds
        started = time.perf_counter()
        with database().transaction(tenant) as conn:
            reader = tree.DbNodes(conn)
            for indices, olds in batches:
                merkle.inclusion_proofs(reader, indices, size)
                merkle.consistency_proofs(reader, olds, size)
        return time.perf_counter() - started

    with database().transaction(tenant) as conn:
        signed_root = tree.latest_checkpoint(conn).root  # type: ignore[union-attr]
        leaves = tree.leaf_hashes(conn, 0, size)
    in_memory = _in_memory(leaves, picks, size, signed_root)
    del leaves
    prod, batched, sequential, floor = common.interleaved(
        product, product_batched, product_sequential, in_memory
    )
    name = f"proofs at {size:,} leaves ({count:,} inclusion+consistency pairs)"
    details = [f"one DB query per proof (the proof API); {count:,} random pairs, seed {seed.SEED}"]
    if seal_seconds is not None:
        details.append(f"first seal of the {size:,} seeded leaves: {seal_seconds:.1f} s")
    proofs_per_s = 2 * count / batched["median"]
    out = [
        common.result(
            name + ", DB vs ours in memory",
            common.side(prod, count, "pairs/s", "ours, from the database"),
            common.side(floor, count, "pairs/s", "ours, in memory"),
            operations=count,
            details=details,
        ),
        common.result(
            name + f", {PER_READ} of each per read (as bundles read them), DB vs in memory",
            common.side(batched, 2 * count, "proofs/s", "ours, from the database"),
            common.side(floor, 2 * count, "proofs/s", "ours, in memory"),
            operations=2 * count,
            details=[
                f"merkle.pipelined_proofs: one query per {PER_READ} proofs of each kind, random "
                "picks (not neighbours); the next batch's read overlaps this batch's folding",
                f"without the overlap (inclusion_proofs, then consistency_proofs, a read each): "
                f"ratio {sequential['median'] / floor['median']:.2f}, median "
                f"{sequential['median']:.2f} s",
            ],
            targets=[
                common.at_most("ratio", batched["median"] / floor["median"], 2.0, "x"),
                common.at_least("proofs/s per process", proofs_per_s, 5_000, "/s"),
            ],
        ),
    ]
    out += _pymerkle(tenant, size, picks, prod, signed_root)
    return out


def _in_memory(
    leaves: list[bytes], picks: list[tuple[int, int]], size: int, signed_root: bytes
) -> Callable[[], float]:
    """A timed run of the same proofs from our own code over an in-memory tree of the same
    leaves."""
    from shared.integrity import merkle

    memory = merkle.MemoryNodes()
    memory.append(leaves)
    assert merkle.root(memory, size) == signed_root

    def run() -> float:
        started = time.perf_counter()
        for index, old in picks:
            merkle.inclusion_proof(memory, index, size)
            merkle.consistency_proof(memory, old, size)
        return time.perf_counter() - started

    return run


def _pymerkle(
    tenant: str,
    size: int,
    picks: list[tuple[int, int]],
    prod: dict[str, float],
    signed_root: bytes,
) -> list[dict[str, Any]]:
    try:
        from pymerkle import InmemoryTree, SqliteTree
    except ImportError:
        return [
            common.result(
                f"proofs at {size:,} leaves, DB vs pymerkle",
                None,
                None,
                skipped="pymerkle is not installed (pip install -r bench/requirements.txt)",
            )
        ]
    from shared.integrity import merkle

    out = []
    rng = random.Random(seed.SEED + 1)
    olds = sorted({size, *(rng.randrange(1, size) for _ in range(20))})
    for label, build in (
        ("InmemoryTree", lambda: _inmemory(InmemoryTree, tenant, size)),
        ("SqliteTree", lambda: _sqlite(SqliteTree, tenant, size)),
    ):
        started = time.perf_counter()
        pm, cleanup = build()
        built = time.perf_counter() - started
        try:
            same_root = pm.get_root(size) == signed_root
            # Roots of earlier sizes: theirs against ours (from the stored subtrees).
            from shared.storage import tree
            from shared.storage.engine import database

            with database().transaction(tenant) as conn:
                ours = {old: merkle.root(tree.DbNodes(conn), old) for old in olds}
            same_prefixes = all(pm.get_root(old) == ours[old] for old in olds)

            def theirs(pm: Any = pm) -> float:
                started = time.perf_counter()
                for index, old in picks:
                    pm.prove_inclusion(index + 1, size)
                    pm.prove_consistency(old, size)
                return time.perf_counter() - started

            first = theirs()  # cold: fills pymerkle's subroot cache
            base = common.repeat(theirs)
        finally:
            cleanup()
        out.append(
            common.result(
                f"proofs at {size:,} leaves ({len(picks):,} pairs), DB vs pymerkle {label}",
                common.side(prod, len(picks), "pairs/s", "ours, from the database"),
                common.side(base, len(picks), "pairs/s", f"pymerkle {label}, warm cache"),
                operations=len(picks),
                details=[
                    f"pymerkle root equals our signed root: {'yes' if same_root else 'NO'}; "
                    f"roots at {len(olds)} sizes equal: {'yes' if same_prefixes else 'NO'}",
                    f"pymerkle build {built:.1f} s; first (cold-cache) pass {first:.2f} s",
                ],
            )
        )
    return out


def _inmemory(cls: Any, tenant: str, size: int) -> tuple[Any, Any]:
    tree_ = cls("sha256")
    tree_.append_entries(_bodies(tenant, size))
    return tree_, lambda: None


def _sqlite(cls: Any, tenant: str, size: int) -> tuple[Any, Any]:
    folder = tempfile.TemporaryDirectory(prefix="plant-bench-pymerkle-")
    tree_ = cls(str(Path(folder.name) / "merkle.db"), "sha256")
    tree_.append_entries(_bodies(tenant, size))

    def cleanup() -> None:
        tree_.close()
        folder.cleanup()

    return tree_, cleanup
