"""Current-version proofs (issue 24) at N entities, each row beside its floor:

- a seal of ``changed`` changed heads into the map of N (new skills appended before each
  seal, untimed), beside the same number of SHA-256 over 64-byte inputs in one process as
  the map update computes (one per node it writes, counted by a dry run of the update);
- current proofs served (``registry.current.current_proof``, one snapshot each; the first
  after a seal reads the checkpoint's shared parts, which the process then holds), beside
  the log's own inclusion proof served the same way (one transaction, its node reads cached),
  with the proof's size in bytes and in hashes and this process's CPU a proof, one at a time
  and by as many threads as a function instance serves requests at once (terraform's
  concurrency, which bench/http.py serves with too), where the target is judged: a served
  proof's database time and another's Python overlap there, as in the function;
- the stored map's bytes per entity.

The full audit with the map check beside the same audit without it is bench/audit.py's row.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from bench import common, seed
from bench.db import superuser
from bench.http import SHIPPED_ENV

PREFIX = "map"  # a tenant of its own: its seals append entities
THREADS = int(SHIPPED_ENV["THREADS"])  # a function instance's request concurrency


def _dry_run_hashes(tenant: str) -> int:
    """How many nodes the next seal's map update writes (each one SHA-256 of 65 bytes)."""
    from shared.integrity import heads_map, sparse_merkle
    from shared.storage import map_nodes, tree
    from shared.storage.engine import database
    from shared.tlog import map_commit

    with database().transaction(tenant, snapshot=True) as conn:
        last = tree.latest_checkpoint(conn)
        heads = map_commit.changed_heads(conn, last.size if last else 0, tree.log_size(conn))
        update = sparse_merkle.update(
            map_nodes.DbMapNodes(conn), {h.key: heads_map.encode_head(h) for h in heads.values()}
        )
    return len(update.written)


def _seal_rows(tenant: str, changed: int) -> dict[str, Any]:
    from shared import tlog

    eng = superuser()
    prod, floor, hashes = [], [], []
    for _ in range(common.REPEATS):
        with eng.connect() as conn:
            start = int(
                conn.execute(
                    text("SELECT size FROM log_heads WHERE tenant_id = :t"), {"t": tenant}
                ).scalar_one()
            )
        seed.write_skills(eng, tenant, start, changed)
        count = _dry_run_hashes(tenant)
        hashes.append(count)
        started = time.perf_counter()
        sealed = tlog.seal(tenant)
        prod.append(time.perf_counter() - started)
        assert sealed.created
        block = bytes(64)
        started = time.perf_counter()
        for _ in range(count):
            hashlib.sha256(block).digest()
        floor.append(time.perf_counter() - started)
    eng.dispose()
    return {"prod": common.stats(prod), "floor": common.stats(floor), "hashes": hashes}


def bench_current_proofs(size: int, changed: int, count: int) -> list[dict[str, Any]]:
    from shared import tlog
    from shared.config import settings
    from shared.registry import current
    from shared.security.principal import Principal
    from shared.storage import tree
    from shared.storage.engine import database
    from shared.tlog import proofs

    began = time.perf_counter()
    tenant = seed.seeded_tenant(PREFIX, size)
    first = time.perf_counter()
    tlog.seal(tenant)
    print(
        f"   seeded {size:,} in {first - began:.1f} s; first seal (the whole map) "
        f"{time.perf_counter() - first:.1f} s",
        flush=True,
    )
    seal = _seal_rows(tenant, changed)
    out = [
        common.result(
            f"seal of {changed:,} changed heads into a map of {size:,}, vs the SHA-256 it needs",
            common.side(seal["prod"], changed, "heads/s", "tlog.seal (map step, log, sign)"),
            common.side(seal["floor"], changed, "heads/s", "SHA-256 x nodes written, 64 B"),
            operations=changed,
            details=[f"nodes written per seal: {seal['hashes']}"],
            targets=[common.at_most("seal", seal["prod"]["median"], 1.0, "s")],
        )
    ]
    reader = Principal("bench", tenant, frozenset({"reader"}))
    with superuser().connect() as conn:
        ids = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT CAST(entity_id AS text) FROM entity_heads WHERE tenant_id = :t "
                    "ORDER BY entity_id LIMIT 20000"
                ),
                {"t": tenant},
            )
        ]
    picks = random.Random(seed.SEED).sample(ids, min(count, len(ids)))
    sizes: list[int] = []

    def served() -> float:
        sizes.clear()
        started = time.perf_counter()
        for entity_id in picks:
            sizes.append(len(json.dumps(current.current_proof(reader, "skills", entity_id))))
        return time.perf_counter() - started

    with database().transaction(tenant) as conn:
        log_size = tree.latest_checkpoint(conn).size  # type: ignore[union-attr]
    indices = [random.Random(seed.SEED + 2).randrange(log_size) for _ in picks]

    def inclusion() -> float:
        started = time.perf_counter()
        for index in indices:
            proofs.version_proof(reader, index)
        return time.perf_counter() - started

    def shared_out(one: Callable[[int], object], items: list[Any]) -> Callable[[], float]:
        """``one`` over ``items`` by ``THREADS`` threads, each taking every n-th item."""
        return lambda: common.threads(
            lambda n: [one(i) for i in items[n::THREADS]], min(THREADS, len(items))
        )

    cpu: dict[str, list[float]] = {"served": [], "inclusion": []}
    prod, floor = common.interleaved(
        lambda: common.with_cpu(served, cpu["served"]),
        lambda: common.with_cpu(inclusion, cpu["inclusion"]),
    )
    many, many_floor = common.interleaved(
        shared_out(lambda i: current.current_proof(reader, "skills", i), picks),
        shared_out(lambda i: proofs.version_proof(reader, i), indices),
    )
    per = {k: 1e3 * sorted(v)[len(v) // 2] / len(picks) for k, v in cpu.items()}
    doc = current.current_proof(reader, "skills", picks[0])
    hashes = len(doc["map_proof"]["siblings"]) + len(doc["map_commit"]["proof"])
    hashes += len(doc["version"]["proof"])
    out.append(
        common.result(
            f"current proofs served at {size:,} entities, vs the log's inclusion proof",
            common.side(prod, len(picks), "proofs/s", "GET .../proof/current (one statement)"),
            common.side(floor, len(picks), "proofs/s", "GET .../versions/N/proof's"),
            operations=len(picks),
            details=[
                f"proof JSON median {sorted(sizes)[len(sizes) // 2]:,} B; one proof holds "
                f"{hashes} hashes ({32 * hashes:,} B): {len(doc['map_proof']['siblings'])} "
                "map siblings, two inclusion paths",
                f"this process's CPU a proof (median): {per['served']:.2f} ms served, "
                f"{per['inclusion']:.2f} ms the inclusion proof (the server's not counted)",
            ],
            targets=[common.at_most("hash bytes", 32 * hashes, 3_000, " B")],
        )
    )
    out.append(
        common.result(
            f"current proofs served at {size:,} entities by {THREADS} threads (the function's "
            "request concurrency), vs the log's inclusion proof",
            common.side(
                many, len(picks), "proofs/s", f"GET .../proof/current, {THREADS} at a time"
            ),
            common.side(many_floor, len(picks), "proofs/s", "GET .../versions/N/proof's"),
            operations=len(picks),
            details=[
                f"one process, {THREADS} threads sharing its connection pool "
                f"({settings().db_pool_size}): terraform/functions.tf's concurrency and pool; "
                "the row above serves the same proofs one at a time"
            ],
            targets=[common.at_least("proofs/s", len(picks) / many["median"], 2_000, "/s")],
        )
    )
    out.append(_storage_row(tenant))
    return out


def _storage_row(tenant: str) -> dict[str, Any]:
    with superuser().connect() as conn:
        rows, nodes, heads, total, all_rows = conn.execute(
            text(
                "SELECT count(*), coalesce(sum(length(nodes) / 66), 0), "
                "(SELECT count(*) FROM entity_heads WHERE tenant_id = :t), "
                "pg_total_relation_size('heads_map_strata'), "
                "(SELECT count(*) FROM heads_map_strata) "
                "FROM heads_map_strata WHERE tenant_id = :t"
            ),
            {"t": tenant},
        ).one()
    per = total / max(all_rows, 1) * rows / max(heads, 1)
    return common.result(
        f"map storage: {per:,.0f} B per entity ({int(nodes):,} nodes in {rows:,} strata for "
        f"{heads:,} entities)",
        None,
        None,
        details=[f"heads_map_strata with its index and TOAST: {total:,} B for {all_rows:,} rows"],
        skipped="a size, not a timing: no floor",
    )
