"""Where a product path spends its time: ``python -m bench.profile NAME [--size N]`` runs one
path under cProfile on a fresh database (embedded unless DATABASE_URL is set) and prints the
top functions by own time, by cumulative time, and the SQL statements it sent (each one a round
trip to the database). NAME: create (writes.create, the path behind POST /registry/...),
http (POST /registry/skills through functions-framework's Flask app, without a socket), batch
(batches.create_batch), audit (a full audit), incremental (an incremental audit), proofs
(inclusion + consistency proofs from the database), export (the CSV report).
For a server, use py-spy (bench/requirements.txt): ``py-spy record --subprocesses --gil --pid
PID`` (gunicorn serves from a child of the process functions-framework starts)."""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.registry import batches, writes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _count_statements() -> Counter[str]:
    from sqlalchemy import event

    from shared.storage.engine import database

    seen: Counter[str] = Counter()

    @event.listens_for(database().engine, "before_cursor_execute")
    def _count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen[" ".join(statement.split())[:90]] += 1

    @event.listens_for(database().engine, "commit")
    def _commit(conn: Any) -> None:
        seen["COMMIT"] += 1

    return seen


def _paths(size: int) -> dict[str, tuple[Callable[[], Any], Callable[[], Any], int]]:
    """name -> (setup, run, operations)."""
    from bench import seed
    from shared import audit
    from shared.security.principal import Principal

    state: dict[str, Any] = {}

    def author() -> Principal:
        return Principal("bench", f"pr-{uuid.uuid4().hex[:8]}", frozenset({"author"}))

    def create_setup() -> None:
        state["who"], state["bodies"] = author(), seed.skill_bodies(seed.SEED, size)

    def create_run() -> None:
        for i, body in enumerate(state["bodies"]):
            writes.create(state["who"], "skills", body, f"p-{i}")

    def http_setup() -> None:
        import functions_framework

        from bench.http import author_token

        create_setup()
        state["bodies"] = [json.dumps(body).encode() for body in state["bodies"]]
        app = functions_framework.create_app("registry", str(ROOT / "main.py"))
        state["client"] = app.test_client()
        state["headers"] = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {author_token(f'ph-{uuid.uuid4().hex[:8]}')}",
        }

    def http_run() -> None:
        for body in state["bodies"]:
            response = state["client"].post("/skills", data=body, headers=state["headers"])
            if response.status_code != 201:
                raise RuntimeError(f"{response.status_code} {response.data[:300]!r}")

    def batch_run() -> None:
        batches.create_batch(state["who"], "skills", state["bodies"], "p")

    def audit_setup() -> None:
        tenant = seed.seeded_tenant("prof", size)
        state["auditor"] = Principal("bench", tenant, frozenset({"auditor"}))
        audit.run(state["auditor"], {"mode": "full"})

    def incremental_setup() -> None:
        from bench.db import superuser

        audit_setup()
        tenant = state["auditor"].tenant  # the log holds more than ``size``: map commits, runs
        seed.write_skills(superuser(), tenant, seed.log_size(superuser(), tenant) or 0, size // 10)

    def proofs_setup() -> None:
        import random

        from shared import tlog

        tenant = seed.seeded_tenant("prof", size)
        tlog.seal(tenant)
        rng = random.Random(seed.SEED)
        state["tenant"] = tenant
        state["picks"] = [(rng.randrange(size), rng.randrange(1, size)) for _ in range(200)]

    def proofs_run() -> None:
        from shared.integrity import merkle
        from shared.storage import tree
        from shared.storage.engine import database

        with database().transaction(state["tenant"]) as conn:
            reader = tree.DbNodes(conn)
            for index, old in state["picks"]:
                merkle.inclusion_proof(reader, index, size)
                merkle.consistency_proof(reader, old, size)

    def export_setup() -> None:
        tenant = seed.seeded_tenant("prof", size)
        state["auditor"] = Principal("bench", tenant, frozenset({"auditor"}))

    def export_run() -> None:
        from shared.evidence import reports

        _, chunks = reports.report(state["auditor"], {"format": "csv"})
        for _ in chunks:
            pass

    return {
        "create": (create_setup, create_run, size),
        "http": (http_setup, http_run, size),
        "batch": (create_setup, batch_run, size),
        "audit": (audit_setup, lambda: audit.run(state["auditor"], {"mode": "full"}), size),
        "incremental": (
            incremental_setup,
            lambda: audit.run(state["auditor"], {"mode": "incremental"}),
            size // 10,
        ),
        "proofs": (proofs_setup, proofs_run, 200),
        "export": (export_setup, export_run, size),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "name", choices=["create", "http", "batch", "audit", "incremental", "proofs", "export"]
    )
    parser.add_argument("--size", type=int, default=1_000)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)

    from bench import db

    db.setup_database()
    setup, run, ops = _paths(args.size)[args.name]
    setup()
    statements = _count_statements()
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    run()
    profiler.disable()
    took = time.perf_counter() - started
    print(f"{args.name}: {ops:,} operations in {took:.3f} s under cProfile")
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(args.top)
        print(out.getvalue())
    print("SQL statements sent (each a round trip):")
    for statement, n in statements.most_common(12):
        print(f"  {n:>8,}  {statement}")


if __name__ == "__main__":
    main()
