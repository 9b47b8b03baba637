"""Side-by-side benchmarks: the product against its own floor, in the same run.

`make bench` (or `python -m bench.run [--quick]`) starts an embedded PostgreSQL unless
DATABASE_URL is set, runs each benchmark with its baseline, and writes bench/results.json and
bench/results.md. Headline: ratio = product / baseline (time per operation); absolute figures
beside it. Every figure is the median of the repeats, with min and max.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))


def _median(samples: list[float]) -> dict[str, float]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def _repeat(fn: Callable[[], float], repeats: int) -> dict[str, float]:
    return _median([fn() for _ in range(repeats)])


def setup_database() -> Any:
    """A fresh migrated database; returns whatever keeps the embedded server alive."""
    from databases import create_database

    server = None
    url = os.environ.get("DATABASE_URL")
    if not url:
        from shared.storage import embedded

        server, url = embedded.start(Path(tempfile.mkdtemp(prefix="plant-bench-")), "delete")
    os.environ["DATABASE_URL"] = create_database(url, prefix="plant_bench")
    os.environ["PLANT_DATA_DIR"] = tempfile.mkdtemp(prefix="plant-bench-data-")
    from shared import bootstrap

    bootstrap.prepare_local()
    return server


# -- 1. append --------------------------------------------------------------------------


def bench_append(writers: int, per_writer: int) -> dict[str, Any]:
    """Registry creates (shared/ storage, all integrity work) vs plain INSERTs of the same
    canonical bytes into a table with no integrity, same driver and database."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from shared import entities
    from shared.auth import Principal
    from shared.integrity import canonical
    from shared.storage.engine import database
    from shared.storage.urls import pg8000_url

    db = database()
    owner = create_engine(pg8000_url(os.environ["DATABASE_URL"]), poolclass=NullPool)
    with owner.begin() as conn:
        conn.execute(
            text("CREATE TABLE IF NOT EXISTS bench_plain (id bigserial PRIMARY KEY, body bytea)")
        )
        conn.execute(text("GRANT INSERT, SELECT ON bench_plain TO plant_app"))
        conn.execute(text("GRANT USAGE ON SEQUENCE bench_plain_id_seq TO plant_app"))

    def product() -> float:
        tenant = f"b-{uuid.uuid4().hex[:10]}"
        author = Principal("bench", tenant, frozenset({"author"}))

        def work(n: int) -> None:
            for i in range(per_writer):
                body = {
                    "name": f"s{n}-{i}-{uuid.uuid4().hex[:6]}",
                    "description": "d",
                    "category": "technical",
                }
                entities.create(author, "skills", body, "bench")

        return _threads(work, writers)

    sample = canonical.dumps({"identity": {"name": "x" * 40}, "metadata": {"d": "y" * 300}})

    def baseline() -> float:
        def work(n: int) -> None:
            for _ in range(per_writer):
                with db.engine.begin() as conn:
                    conn.execute(text("INSERT INTO bench_plain (body) VALUES (:b)"), {"b": sample})

        return _threads(work, writers)

    total = writers * per_writer
    prod = _repeat(product, REPEATS)
    base = _repeat(baseline, REPEATS)
    return _pair(f"append, {writers} writer(s)", prod, base, total, "appends/s")


def _threads(work: Callable[[int], None], count: int) -> float:
    threads = [threading.Thread(target=work, args=(n,)) for n in range(count)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def _pair(name: str, prod: dict, base: dict, ops: int, unit: str) -> dict[str, Any]:
    return {
        "name": name,
        "ratio": prod["median"] / base["median"],
        "product": {**prod, "rate": ops / prod["median"], "unit": unit},
        "baseline": {**base, "rate": ops / base["median"], "unit": unit},
        "operations": ops,
    }


def _seeded_tenant(prefix: str, size: int) -> str:
    """A new tenant holding ``size`` real skill versions, written in bulk (tests/seeding.py)."""
    from seeding import seed_skills
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from shared.storage.urls import pg8000_url

    tenant = f"{prefix}-{uuid.uuid4().hex[:10]}"
    superuser = create_engine(pg8000_url(os.environ["DATABASE_URL"]), poolclass=NullPool)
    for start in range(0, size, 20_000):
        seed_skills(superuser, tenant, start, min(20_000, size - start))
    superuser.dispose()
    return tenant


# -- 2. proofs ----------------------------------------------------------------------------


def bench_proofs(size: int, count: int) -> dict[str, Any]:
    """Inclusion + consistency proofs from the database at ``size`` leaves, vs the same proofs
    from an in-memory tree (the floor: no database at all)."""
    import random

    from shared import tlog
    from shared.integrity import merkle
    from shared.storage import tree
    from shared.storage.engine import database

    tenant = _seeded_tenant("p", size)
    tlog.seal(tenant)
    rng = random.Random(7)
    picks = [(rng.randrange(size), rng.randrange(1, size)) for _ in range(count)]

    def product() -> float:
        started = time.perf_counter()
        with database().transaction(tenant) as conn:
            reader = tree.DbNodes(conn)
            for index, old in picks:
                merkle.inclusion_proof(reader, index, size)
                merkle.consistency_proof(reader, old, size)
        return time.perf_counter() - started

    with database().transaction(tenant) as conn:
        leaves = tree.leaf_hashes(conn, 0, size)
    memory = merkle.MemoryNodes()
    memory.append(leaves)

    def baseline() -> float:
        started = time.perf_counter()
        for index, old in picks:
            merkle.inclusion_proof(memory, index, size)
            merkle.consistency_proof(memory, old, size)
        return time.perf_counter() - started

    return _pair(
        f"proofs at {size:,} leaves (incl.+cons. pairs)",
        _repeat(product, REPEATS),
        _repeat(baseline, REPEATS),
        count,
        "pairs/s",
    )


# -- 3. crypto ----------------------------------------------------------------------------


def bench_crypto(count: int) -> dict[str, Any]:
    """Signing a checkpoint (Ed25519 signed note) vs RSA-4096 PSS, what the original system
    did per amendment."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    from shared.integrity import note

    signer = note.Signer.from_seed("bench/log", b"\x01" * 32)
    body = note.checkpoint_body("bench/log/t", 123456, b"\x02" * 32)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)

    def product() -> float:
        started = time.perf_counter()
        for _ in range(count):
            note.sign_note(body, [signer])
        return time.perf_counter() - started

    def baseline() -> float:
        started = time.perf_counter()
        for _ in range(count):
            rsa_key.sign(body.encode(), pss, hashes.SHA256())
        return time.perf_counter() - started

    return _pair(
        "sign a checkpoint: Ed25519 note vs RSA-4096 PSS",
        _repeat(product, REPEATS),
        _repeat(baseline, REPEATS),
        count,
        "signatures/s",
    )


# -- 4. audit -----------------------------------------------------------------------------


def bench_audit(size: int) -> dict[str, Any]:
    """A full audit of ``size`` entries vs reading the same rows and hashing them (the floor)."""
    import hashlib

    from sqlalchemy import text

    from shared import auditing
    from shared.auth import Principal
    from shared.storage.engine import database

    tenant = _seeded_tenant("a", size)
    auditor = Principal("bench", tenant, frozenset({"auditor"}))
    auditing.run(auditor, {"mode": "full"})  # seals once, outside the timing

    def product() -> float:
        started = time.perf_counter()
        run, _ = auditing.run(auditor, {"mode": "full"})
        assert run["findings"] == [], run["findings"][:3]
        return time.perf_counter() - started

    def baseline() -> float:
        started = time.perf_counter()
        with database().transaction(tenant) as conn:
            for low in range(0, size, 5000):
                for (body,) in conn.execute(
                    text("SELECT body FROM log_entries WHERE idx >= :a AND idx < :b ORDER BY idx"),
                    {"a": low, "b": low + 5000},
                ):
                    hashlib.sha256(b"\x00" + bytes(body)).digest()
        return time.perf_counter() - started

    return _pair(
        f"full audit of {size:,} entries",
        _repeat(product, REPEATS),
        _repeat(baseline, REPEATS),
        size,
        "entries/s",
    )


# -- report -------------------------------------------------------------------------------

REPEATS = 5


def machine() -> dict[str, Any]:
    import sqlalchemy

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sqlalchemy": sqlalchemy.__version__,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write(results: list[dict[str, Any]]) -> None:
    data = {"machine": machine(), "repeats": REPEATS, "results": results}
    (HERE / "results.json").write_text(json.dumps(data, indent=2))
    lines = [
        "| benchmark | ratio (product/baseline time) | product | baseline |",
        "|---|---|---|---|",
    ]
    for r in results:
        p, b = r["product"], r["baseline"]
        lines.append(
            f"| {r['name']} | {r['ratio']:.2f} | {p['rate']:,.0f} {p['unit']} "
            f"(median {p['median']:.3f}s, {p['min']:.3f}-{p['max']:.3f}) | "
            f"{b['rate']:,.0f} {b['unit']} (median {b['median']:.3f}s) |"
        )
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    global REPEATS
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, 3 repeats")
    args = parser.parse_args()
    if args.quick:
        REPEATS = 3
    server = setup_database()
    small = args.quick
    results = [
        bench_append(1, 50 if small else 300),
        bench_append(8, 20 if small else 100),
        bench_proofs(20_000 if small else 1_000_000, 200 if small else 2_000),
        bench_crypto(200 if small else 1_000),
        bench_audit(10_000 if small else 100_000),
    ]
    write(results)
    del server


if __name__ == "__main__":
    main()
