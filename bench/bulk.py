"""Bulk creates: ``shared.entities.create_batch`` of N seeded skills in one call, against
writing the same canonical bytes into a plain table with COPY (the floor: one statement, no
parameter encoding) and, for reference, with ``INSERT ... SELECT unnest(:bodies)``."""

from __future__ import annotations

import io
import time
import uuid
from typing import Any

from sqlalchemy import text

from bench import common, seed
from bench.append import _canonical_documents
from bench.db import plain_table

RATE_TARGET = 50_000  # entities/s (issue #7)


def bench_bulk(count: int) -> dict[str, Any]:
    from shared import entities
    from shared.auth import Principal
    from shared.storage.engine import database

    plain_table("bench_bulk")
    bodies = seed.skill_bodies(seed.SEED, count)
    stored = _canonical_documents(bodies)
    engine = database().engine
    database().ping()

    def copy() -> float:
        payload = b"".join(b"\\\\x" + body.hex().encode() + b"\n" for body in stored)
        started = time.perf_counter()
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("COPY bench_bulk (body) FROM STDIN", stream=io.BytesIO(payload))
            raw.commit()
        finally:
            raw.close()
        return time.perf_counter() - started

    def unnest() -> float:
        return common.timed(lambda: _unnest(engine, stored))

    baseline = common.repeat(copy)
    via_unnest = common.repeat(unnest)
    details = [
        f"INSERT ... SELECT unnest(bytea[]): {count / via_unnest['median']:,.0f} entities/s "
        f"(median {via_unnest['median']:.3f} s)",
        "COPY payload hex-encoded before the timing starts",
    ]
    name = f"bulk create of {count:,} skills in one call"
    if not hasattr(entities, "create_batch"):
        return common.result(
            name,
            None,
            common.side(baseline, count, "entities/s", "COPY into a plain table"),
            operations=count,
            details=details,
            targets=[common.at_least("entities/s", None, RATE_TARGET, "/s")],
            skipped="shared.entities.create_batch does not exist yet",
        )

    def product() -> float:
        author = Principal("bench", f"k-{uuid.uuid4().hex[:10]}", frozenset({"author"}))
        return common.timed(lambda: entities.create_batch(author, "skills", bodies, "bench-bulk"))

    prod = common.repeat(product)
    return common.result(
        name,
        common.side(prod, count, "entities/s", "entities.create_batch"),
        common.side(baseline, count, "entities/s", "COPY into a plain table"),
        operations=count,
        details=details,
        targets=[common.at_least("entities/s", count / prod["median"], RATE_TARGET, "/s")],
    )


def _unnest(engine: Any, stored: list[bytes]) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO bench_bulk (body) SELECT unnest(CAST(:b AS bytea[]))"),
            {"b": stored},
        )
