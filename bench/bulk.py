"""Bulk creates: ``shared.registry.batches.create_batch`` of N seeded skills in one call, against
its floor (issue 27, decision 2): a binary COPY of the very rows the product writes (entries
and heads) into tables with the ledger's own columns and indexes but no checks, its payloads
encoded before the timing starts. Target: the product's time <= 1.5 x the floor's. For
reference, the same bodies written into a plain table with COPY and with ``INSERT ... SELECT
unnest(:bodies)``, and the floor's COPY into the same tables with their primary keys only:
what the ledger's secondary indexes cost this server, whatever the product does on top."""

from __future__ import annotations

import io
import os
import struct
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from bench import common, seed
from bench.append import _canonical_documents
from bench.db import plain_table, superuser
from bench.report import _cpu_reference

RATIO_TARGET = 1.5  # product time / the indexed COPY's time (issue 27)


def bench_bulk(count: int) -> dict[str, Any]:
    from shared.registry import batches
    from shared.security.principal import Principal
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

    def product() -> float:
        author = Principal("bench", f"k-{uuid.uuid4().hex[:10]}", frozenset({"author"}))
        return common.timed(lambda: batches.create_batch(author, "skills", bodies, "bench-bulk"))

    cpu = _cpu_reference()
    prod, indexed, plain, via_unnest, keyed, tagged = common.interleaved(
        product,
        _indexed_copy(count),
        copy,
        unnest,
        _indexed_copy(count, keys_only=True),
        _indexed_copy(count, tags=True),
    )
    load = os.getloadavg()[0]
    ratio = prod["median"] / indexed["median"]
    details = [
        f"COPY of the bodies into a plain table: {count / plain['median']:,.0f} entities/s "
        f"(median {plain['median']:.3f} s); INSERT ... SELECT unnest(bytea[]): "
        f"{count / via_unnest['median']:,.0f} entities/s (median {via_unnest['median']:.3f} s)",
        f"the floor's COPY into tables with their primary keys only: "
        f"{count / keyed['median']:,.0f} entities/s (median {keyed['median']:.3f} s)",
        f"the floor plus the batch's tag rows COPYed into a table like entity_tags (which a "
        f"batch writes too): median {tagged['median']:.3f} s, "
        f"{tagged['median'] / indexed['median']:.2f} x the floor; the product at "
        f"{prod['median'] / tagged['median']:.2f} x it",
        "COPY payloads encoded before the timing starts",
        f"CPU reference before the run: {cpu / 1e6:.2f} million SHA-256 of 460 B per second "
        f"on one core, {_cpu_reference() / 1e6:.2f} after; 1-minute load average at the end "
        f"{load:.2f}",
    ]
    name = f"bulk create of {count:,} skills in one call"
    return common.result(
        name,
        common.side(prod, count, "entities/s", "batches.create_batch"),
        common.side(
            indexed, count, "entities/s", "binary COPY of its entry and head rows (the floor)"
        ),
        operations=count,
        details=details,
        targets=[common.at_most("time / the floor's", ratio, RATIO_TARGET, "x")],
    )


LARGE_START = 10_000_000  # seeded bodies from here on: names no seeded tenant holds yet


def bench_bulk_large(size: int, count: int) -> dict[str, Any]:
    """Batches of ``count`` new skills into a tenant of ``size``-odd entries, a CHECKPOINT
    before each: the registry's time-ordered ids (``shared.registry.ids``) into the seeded
    tenant the proofs and audits read (run after them: it holds their increments too), against
    the same batches given random version-4 ids, into a tenant of as many entries seeded with
    random ids throughout (as the registry made them before). A fresh tenant, as ``bench_bulk``
    uses, has empty indexes and cannot show the difference: three are keyed by the tenant,
    then the entity id."""
    from unittest import mock

    from bench.proofs import TENANT_PREFIX
    from shared.registry import batches
    from shared.security.principal import Principal

    eng = superuser()
    ordered = seed.tenant_name(TENANT_PREFIX, size)
    if seed.log_size(eng, ordered) is None:
        seed.seeded_tenant(TENANT_PREFIX, size)
    held = seed.log_size(eng, ordered) or size
    scattered = seed.seeded_tenant("bulk", held, random_ids=True)
    made = iter(range(LARGE_START, LARGE_START + 1_000 * count, count))
    wal: dict[str, list[float]] = {ordered: [], scattered: []}

    def batch(tenant: str, new_id: Any) -> Any:
        """Timed batches into ``tenant``, their ids drawn from ``new_id``."""
        author = Principal("bench", tenant, frozenset({"author"}))

        def create() -> None:
            bodies = seed.skill_bodies(seed.SEED, count, start=next(made))
            batches.create_batch(author, "skills", bodies, "b")

        def run() -> float:
            with eng.connect() as conn:
                conn.execute(text("CHECKPOINT"))
                before = conn.execute(text("SELECT pg_current_wal_lsn()")).scalar_one()
            with mock.patch.object(batches, "new_entity_id", new_id):
                took = common.timed(create)
            with eng.connect() as conn:
                written = conn.execute(
                    text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), :before)"),
                    {"before": before},
                ).scalar_one()
            wal[tenant].append(float(written) / 1e6)
            return took

        return run

    product, baseline = common.interleaved(
        batch(ordered, batches.new_entity_id), batch(scattered, uuid.uuid4)
    )
    eng.dispose()
    median = {k: common.stats(v)["median"] for k, v in wal.items()}
    return common.result(
        f"bulk create of {count:,} skills into a tenant of {held:,} entries",
        common.side(
            product, count, "entities/s", "create_batch, time-ordered ids (shared.registry.ids)"
        ),
        common.side(
            baseline, count, "entities/s", "the same, random version-4 ids (a tenant of them)"
        ),
        operations=count,
        details=[
            f"WAL a batch writes (median): {median[ordered]:.1f} MB with time-ordered ids, "
            f"{median[scattered]:.1f} MB with random ones",
            "a CHECKPOINT before each batch: the first change to an index page after one "
            "writes the whole page to the WAL",
        ],
    )


def _indexed_copy(count: int, keys_only: bool = False, tags: bool = False) -> Any:
    """A timed run that COPYs the rows the registry writes for the first ``count`` seeded
    skills (``seed.encoded_rows``: the bodies ``bench_bulk`` creates) into ``bench_entries``
    and ``bench_heads``: ``LIKE log_entries`` / ``LIKE entity_heads`` including their indexes
    and constraints (no triggers, no row-level security), emptied before each run; with
    ``keys_only``, into ``bench_entries_pk`` and ``bench_heads_pk``, whose indexes other than
    the primary key are dropped; with ``tags``, into ``bench_entries_t`` and ``bench_heads_t``
    and the bodies' tag rows into ``bench_tags_t`` (``LIKE entity_tags``)."""
    from shared.storage import staging

    eng = superuser()
    suffix = "_pk" if keys_only else "_t" if tags else ""
    entries_table, heads_table = f"bench_entries{suffix}", f"bench_heads{suffix}"
    tags_table = f"bench_tags{suffix}"
    tables = [(entries_table, "log_entries"), (heads_table, "entity_heads")]
    tables += [(tags_table, "entity_tags")] if tags else []
    with eng.begin() as conn:
        for copy_, like in tables:
            conn.execute(text(f"DROP TABLE IF EXISTS {copy_}"))
            conn.execute(text(f"CREATE TABLE {copy_} (LIKE {like} INCLUDING ALL)"))
            if keys_only:
                secondary = conn.execute(
                    text(
                        "SELECT indexrelid::regclass::text FROM pg_index "
                        "WHERE indrelid = CAST(:t AS regclass) AND NOT indisprimary"
                    ),
                    {"t": copy_},
                ).scalars()
                for index in list(secondary):
                    conn.execute(text(f"DROP INDEX {index}"))
    field, text_ = staging.field, staging.text
    # timestamptz in binary COPY: microseconds since 2000-01-01 UTC, a big-endian int8
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    created = datetime.fromisoformat(seed.CREATED_AT.replace("Z", "+00:00"))
    stamp = _int8((created - epoch) // timedelta(microseconds=1))
    entries, heads, tag_rows = [], [], []
    for i, ident, body, digest, leaf, hashes, name, category, key in seed.encoded_rows(
        "bench", seed.SEED, 0, count
    ):
        uid = uuid.UUID(ident).bytes
        for tag in dict.fromkeys(seed.skill_body(seed.SEED, i).get("tags") or []):
            tag_rows.append(
                staging.row((text_("bench"), field(uid), text_("skill"), text_(tag), _int8(i)))
            )
        entries.append(
            staging.row(
                (text_("bench"), _int8(i), text_("version"), text_("skill"), field(uid),
                 staging.int4(1), field(body), field(digest), field(leaf), field(hashes),
                 text_("seed"))
            )
        )  # fmt: skip
        heads.append(
            staging.row(
                (text_("bench"), field(uid), text_("skill"), staging.int4(1), text_("draft"),
                 text_(name), text_(category), text_(key), _int8(i), _int8(i), stamp, stamp)
            )
        )  # fmt: skip
    entry_rows, head_rows = staging.payload(entries), staging.payload(heads)
    tag_payload = staging.payload(tag_rows)
    entry_columns = (
        "tenant_id", "idx", "entry_type", "kind", "entity_id", "version", "body", "digest",
        "leaf_hash", "field_hashes", "actor",
    )  # fmt: skip
    head_columns = (
        "tenant_id", "entity_id", "kind", "version", "status", "name", "category", "unique_key",
        "first_index", "log_index", "created_at", "updated_at",
    )  # fmt: skip

    def run() -> float:
        with eng.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(t for t, _ in tables)}"))
        started = time.perf_counter()
        with eng.begin() as conn:
            staging.copy_in(conn, entries_table, entry_columns, entry_rows)
            staging.copy_in(conn, heads_table, head_columns, head_rows)
            if tags:
                columns = ("tenant_id", "entity_id", "kind", "tag", "first_index")
                staging.copy_in(conn, tags_table, columns, tag_payload)
        return time.perf_counter() - started

    return run


def _int8(value: int) -> bytes:
    return struct.pack("!iq", 8, value)


def _unnest(engine: Any, stored: list[bytes]) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO bench_bulk (body) SELECT unnest(CAST(:b AS bytea[]))"),
            {"b": stored},
        )
