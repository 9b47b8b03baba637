"""Similar skills (issue 28, Must show): what a create pays for the feature on its default path,
and search latency over the HNSW index beside an exact scan of the same vectors.

``bench_create_cost(n)``: the registry's create as its handler calls it
(``similar.create`` with no ``check_similar``) beside ``writes.create`` alone, creates
interleaved in blocks on two tenants; per-create p50. Target: no added cost (the default path
embeds nothing: the model's runtime is not even loaded by it, which the result records).

``bench_search(n, queries)``: ``n`` vectors for one tenant, clustered around the real vectors
of the labelled set's skills (each a centre plus Gaussian noise, renormalised: cosine ~0.7 to
its centre, as a registry of many wordings of fewer skills), loaded without the index, then
the HNSW index built (its build time reported); each query runs ``skill_vectors.nearest``
(limit 40: a page of 10 over-fetched 4x) in its own transaction as the application role,
through the index, and again with index scans off (an exact scan and top-N sort). p50/p99 per
query, and recall@10 of the index against the exact answer.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import uuid
from typing import Any

from sqlalchemy import text

from bench import common, seed
from bench.db import superuser
from bench.embeddings import LABELLED

LIMIT = 40  # a page of 10, over-fetched 4x (skill_vectors.OVERFETCH)
LOAD_BATCH = 2_000


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_create_cost(n: int = 500) -> dict[str, Any]:
    from shared.registry import similar, writes
    from shared.security.principal import Principal
    from shared.storage.engine import database

    database().ping()
    bodies = seed.skill_bodies(seed.SEED, n)
    tenants = [Principal("bench", f"c-{uuid.uuid4().hex[:10]}", frozenset({"author"}))] * 2
    tenants[1] = Principal("bench", f"c-{uuid.uuid4().hex[:10]}", frozenset({"author"}))
    samples: list[list[float]] = [[], []]
    calls = [
        lambda b: similar.create(tenants[0], "skills", b, "bench", {}),
        lambda b: writes.create(tenants[1], "skills", b, "bench"),
    ]
    block = 25
    for start in range(0, n, block):
        order = (0, 1) if (start // block) % 2 == 0 else (1, 0)
        for side in order:
            for body in bodies[start : start + block]:
                began = time.perf_counter()
                calls[side](body)
                samples[side].append(time.perf_counter() - began)
    product, baseline = common.stats(samples[0]), common.stats(samples[1])
    # the per-create figure is the median of single creates, not of blocks
    added = product["median"] - baseline["median"]
    loaded = sorted(m for m in ("onnxruntime", "tokenizers") if m in sys.modules)
    return common.result(
        "create, default path (similar.create) vs writes.create",
        common.side(product, 1, "creates/s", label="handler's path, p50 per create"),
        common.side(baseline, 1, "creates/s", label="writes.create alone, p50"),
        operations=n,
        details=[
            f"p50 {product['median'] * 1000:.2f} ms vs {baseline['median'] * 1000:.2f} ms "
            f"(added {added * 1000:+.3f} ms); p99 {_p(samples[0], 0.99) * 1000:.2f} ms vs "
            f"{_p(samples[1], 0.99) * 1000:.2f} ms",
            f"model runtime loaded by {n} creates: {', '.join(loaded) or 'none'}",
        ],
        targets=[common.at_most("added p50 per create", added * 1000, 1.0, "ms")],
    )


def _vectors(n: int) -> Any:
    import numpy as np

    from shared.registry import embeddings

    skills = json.loads(LABELLED.read_text())["skills"]
    centres = np.array(
        embeddings.embed([embeddings.skill_text(s["name"], s["description"]) for s in skills])
    )
    rng = np.random.default_rng(28)
    picked = centres[rng.integers(0, len(centres), n)]
    points = picked + rng.normal(0, 0.05, (n, embeddings.DIMENSION))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def _load(tenant: str, vectors: Any) -> float:
    """Vectors stored as the application role with the index dropped, then the index built;
    the build's seconds."""
    from shared.registry import skill_vectors
    from shared.storage.engine import database

    admin = superuser()
    with admin.begin() as conn:
        conn.execute(text("DROP INDEX IF EXISTS skill_embeddings_nearest"))
    for start in range(0, len(vectors), LOAD_BATCH):
        rows = [(str(uuid.uuid4()), 1, v) for v in vectors[start : start + LOAD_BATCH].tolist()]
        with database().transaction(tenant) as conn:
            skill_vectors.store(conn, tenant, rows)
    began = time.perf_counter()
    with admin.begin() as conn:
        conn.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
        conn.execute(
            text(
                "CREATE INDEX skill_embeddings_nearest ON skill_embeddings "
                "USING hnsw (embedding vector_cosine_ops)"
            )
        )
    built = time.perf_counter() - began
    with admin.begin() as conn:
        conn.execute(text("ANALYZE skill_embeddings"))
    admin.dispose()
    return built


def _query(tenant: str, vector: list[float], exact: bool) -> tuple[float, list[str], str]:
    from shared.registry import embeddings, skill_vectors
    from shared.storage.engine import database

    began = time.perf_counter()
    with database().transaction(tenant) as conn:
        if exact:
            conn.execute(text("SET LOCAL enable_indexscan = off"))
        found = skill_vectors.nearest(conn, tenant, vector, LIMIT)
    took = time.perf_counter() - began
    plan = ""
    if not found:
        raise RuntimeError("the search found nothing")
    with database().transaction(tenant) as conn:
        if exact:
            conn.execute(text("SET LOCAL enable_indexscan = off"))
        plan = " ".join(
            r[0]
            for r in conn.execute(
                text(
                    "EXPLAIN SELECT entity_id FROM skill_embeddings WHERE tenant_id = :t "
                    "AND model_id = :m ORDER BY embedding <=> CAST(:q AS vector) LIMIT 40"
                ),
                {"t": tenant, "m": embeddings.MODEL_ID, "q": embeddings.vector_literal(vector)},
            )
        )
    return took, [f.entity_id for f in found], plan


def bench_search(n: int = 100_000, queries: int = 200) -> dict[str, Any]:
    tenant = f"s-{uuid.uuid4().hex[:10]}"
    vectors = _vectors(n + queries)
    loaded = time.perf_counter()
    built = _load(tenant, vectors[:n])
    loaded = time.perf_counter() - loaded
    asked = vectors[n:].tolist()
    _query(tenant, asked[0], False)  # warm the index's pages into the cache
    _query(tenant, asked[0], True)
    fast: list[float] = []
    slow: list[float] = []
    recall: list[float] = []
    plans = {}
    for i, vector in enumerate(asked):
        order = (False, True) if i % 2 == 0 else (True, False)
        got = {}
        for exact in order:
            took, ids, plan = _query(tenant, vector, exact)
            (slow if exact else fast).append(took)
            got[exact] = ids
            plans[exact] = plan
        recall.append(len(set(got[False][:10]) & set(got[True][:10])) / 10)
    uses_index = "skill_embeddings_nearest" in plans[False]
    scans = "Seq Scan" in plans[True] and "skill_embeddings_nearest" not in plans[True]
    return common.result(
        f"similar-skill search, {n:,} skills (HNSW vs exact scan)",
        common.side(common.stats(fast), 1, "searches/s", label="HNSW index, p50 per search"),
        common.side(common.stats(slow), 1, "searches/s", label="exact scan + sort, p50"),
        operations=queries,
        details=[
            f"HNSW p50 {_p(fast, 0.5) * 1000:.2f} ms, p99 {_p(fast, 0.99) * 1000:.2f} ms; "
            f"exact p50 {_p(slow, 0.5) * 1000:.2f} ms, p99 {_p(slow, 0.99) * 1000:.2f} ms",
            f"recall@10 of HNSW vs exact {statistics.mean(recall):.3f} "
            f"(ef_search {max(200, LIMIT)}, limit {LIMIT})",
            f"plans: HNSW uses the index {uses_index}; exact is a scan {scans}",
            f"load {loaded:.1f} s incl. index build {built:.1f} s",
        ],
        targets=[
            common.at_most("HNSW p99 per search", _p(fast, 0.99) * 1000, 50.0, "ms"),
            common.at_least("recall@10", statistics.mean(recall), 0.95, "x"),
        ],
    )
