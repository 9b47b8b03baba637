"""Seeded fixture data for every benchmark: the same seed gives the same bodies, entity ids and
stored bytes, run after run.

``skill_body(seed, i)`` is the i-th request body a client would POST (its own
``random.Random``, so any slice of the sequence is the same whichever order it is made in).
``write_skills`` stores such bodies in bulk exactly as the registry would have written them
(canonical document, digests, per-field digests, leaf hash, head), without the per-request
round trips, so that audits and proofs check real documents at sizes of 1,000,000 (the logic
of tests/seeding.py, made repeatable and spread over the machine's cores).
"""

from __future__ import annotations

import io
import os
import random
import uuid
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from shared.registry import ids

SEED = 9162
CREATED_AT = "2026-01-01T00:00:00.000Z"
_CREATED_MS = 1_767_225_600_000  # CREATED_AT in Unix milliseconds

_ADJECTIVES = (
    "applied", "secure", "distributed", "regulated", "clinical", "financial", "embedded",
    "statistical", "legal", "visual", "conversational", "industrial", "cloud", "mobile",
)  # fmt: skip
_NOUNS = (
    "analysis", "forecasting", "translation", "review", "modelling", "triage", "auditing",
    "scheduling", "negotiation", "summarisation", "testing", "design", "planning", "support",
)  # fmt: skip
_WORDS = (
    "writes", "reviews", "plans", "checks", "explains", "documents", "reports", "tests",
    "models", "data", "contracts", "code", "claims", "risks", "requirements", "evidence",
    "with", "for", "and", "under", "clear", "careful", "traceable", "reviewed", "policies",
)  # fmt: skip
_TAGS = ("python", "sql", "finance", "health", "legal", "ops", "ml", "nlp", "vision", "qa")
_CATEGORIES = ("technical", "soft_skill", "domain_expertise", "certification")


def _rng(seed: int, i: int) -> random.Random:
    return random.Random((seed << 40) | i)


def skill_body(seed: int, i: int) -> dict[str, Any]:
    """The i-th skill a client creates: unique name, a description of 8 to 40 words, a
    category, up to four tags, and sometimes custom attributes."""
    rng = _rng(seed, i)
    body: dict[str, Any] = {
        "name": f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {i}",
        "description": " ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 40))),
        "category": rng.choice(_CATEGORIES),
        "tags": sorted(rng.sample(_TAGS, rng.randint(0, 4))),
    }
    if rng.random() < 0.3:
        body["custom_attributes"] = {"level": rng.randint(1, 5), "source": "bench"}
    return body


def skill_bodies(seed: int, count: int, start: int = 0) -> list[dict[str, Any]]:
    return [skill_body(seed, i) for i in range(start, start + count)]


def entity_id(seed: int, i: int, random_ids: bool = False) -> str:
    """The i-th skill's id, shaped as the registry makes them (``shared.registry.ids``): made one
    millisecond after the one before, from ``CREATED_AT`` on; or, given ``random_ids``, a
    random version-4 id, as the registry made them before."""
    rng = _rng(seed ^ 0x5EED, i)
    if random_ids:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return str(ids.uuid7(_CREATED_MS + i, rng.getrandbits(ids.RANDOM_BITS)))


def encoded_rows(
    tenant: str, seed: int, start: int, count: int, random_ids: bool = False
) -> list[tuple[Any, ...]]:
    """The stored form of skills ``start``..``start+count-1``: what ``writes.create`` would
    have written, with fixed timestamps and request ids."""
    from shared.registry import documents
    from shared.registry.documents import Change
    from shared.registry.versions import passed_rules
    from shared.rules import inputs
    from shared.rules.kinds import KINDS
    from shared.rules.relations import unique_key

    kind = KINDS["skills"]
    passed = passed_rules(kind)
    rows = []
    for i in range(start, start + count):
        fields, _, problems = inputs.check_write(kind, skill_body(seed, i), current=None)
        assert not problems, problems
        ident = entity_id(seed, i, random_ids)
        change = Change(
            tenant, ident, 1, "draft", CREATED_AT, CREATED_AT, None, "created", "seed",
            f"seed-{i}", "create", passed,
        )  # fmt: skip
        enc = documents.encode(documents.build(kind, fields, change))
        rows.append(
            (
                i, ident, enc.body, enc.digest, enc.leaf_hash,
                enc.field_hashes, fields["name"], fields["category"],
                unique_key(kind, fields),
            )
        )  # fmt: skip
    return rows


def _copy_text(value: Any) -> str:
    """One field in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()
    out = str(value)
    return out.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy_lines(rows: list[tuple[Any, ...]]) -> bytes:
    return "".join("\t".join(_copy_text(v) for v in row) + "\n" for row in rows).encode()


Chunk = tuple[bytes, bytes, int, bytes]  # COPY payloads, the size after, the leaves joined


def copy_chunk(tenant: str, seed: int, start: int, count: int, random_ids: bool = False) -> Chunk:
    """COPY payloads (log entries, entity heads) of skills ``start``..``start+count-1``, and
    their leaf hashes (for the chunk's write receipt)."""
    entries, heads, leaves = [], [], []
    for i, ident, body, digest, leaf, fields, name, category, key in encoded_rows(
        tenant, seed, start, count, random_ids
    ):
        entries.append(
            (tenant, i, "version", "skill", ident, 1, body, digest, leaf, None, fields, "seed")
        )
        heads.append(
            (tenant, ident, "skill", 1, "draft", name, category, key, i, i, CREATED_AT, CREATED_AT)
        )
        leaves.append(leaf)
    return _copy_lines(entries), _copy_lines(heads), start + count, b"".join(leaves)


_ENTRY_COLUMNS = (
    "tenant_id, idx, entry_type, kind, entity_id, version, body, digest, leaf_hash, "
    "prev_digest, field_hashes, actor"
)
_HEAD_COLUMNS = (
    "tenant_id, entity_id, kind, version, status, name, category, unique_key, first_index, "
    "log_index, created_at, updated_at"
)
_SIZE = (
    "INSERT INTO log_heads (tenant_id, size) VALUES (%s, %s) "
    "ON CONFLICT (tenant_id) DO UPDATE SET size = GREATEST(log_heads.size, EXCLUDED.size)"
)


_RECEIPT = (
    "INSERT INTO log_receipts (tenant_id, first_idx, count, receipt, leaves) "
    "VALUES (%s, %s, %s, %s, %s)"
)


def _copy(superuser: Engine, tenant: str, chunk: Chunk) -> None:
    """COPY one chunk in one transaction (pg8000 escapes bytea arrays a character at a time
    in Python, so array parameters are far slower than COPY at this size), with the batch
    write receipt the registry's key would have signed over it, as a bulk create signs."""
    from shared.tlog import keys, receipts

    entries, heads, size, joined = chunk
    leaves = [joined[at : at + 32] for at in range(0, len(joined), 32)]
    first = size - len(leaves)
    row, _, _ = receipts.sign(keys.keyring().active, tenant, first, leaves, batch=True)
    raw = superuser.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(f"COPY log_entries ({_ENTRY_COLUMNS}) FROM STDIN", stream=io.BytesIO(entries))
        cur.execute(f"COPY entity_heads ({_HEAD_COLUMNS}) FROM STDIN", stream=io.BytesIO(heads))
        cur.execute(_SIZE, (tenant, size))
        cur.execute(_RECEIPT, (tenant, row.first, row.count, row.receipt, row.leaves))
        raw.commit()
    finally:
        raw.close()


CHUNK = 10_000


def write_skills(
    superuser: Engine,
    tenant: str,
    start: int,
    count: int,
    seed: int = SEED,
    random_ids: bool = False,
) -> None:
    """Append skills ``start``..``start+count-1`` to ``tenant``'s log (which must hold exactly
    ``start`` entries). Large counts are encoded on every core while this process inserts."""
    chunks = [(s, min(CHUNK, start + count - s)) for s in range(start, start + count, CHUNK)]
    if len(chunks) <= 2:
        for s, n in chunks:
            _copy(superuser, tenant, copy_chunk(tenant, seed, s, n, random_ids))
        return
    workers = max(1, os.cpu_count() or 1)
    pending: deque[Future[Chunk]] = deque()
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        for s, n in chunks:
            pending.append(pool.submit(copy_chunk, tenant, seed, s, n, random_ids))
            if len(pending) > 2 * workers:  # bounded look-ahead: memory stays flat
                _copy(superuser, tenant, pending.popleft().result())
        while pending:  # in order: indices must stay contiguous
            _copy(superuser, tenant, pending.popleft().result())


def analyze(superuser: Engine) -> None:
    """Refresh the planner's statistics after a bulk load, as autovacuum would have done by
    the time a tenant had grown this large one request at a time. (Without it, plans made on
    the stale statistics of freshly COPYed tables can run for many minutes: the export's
    keyset query has then hit the 15 s statement timeout.)"""
    with superuser.connect() as conn:
        conn.execute(text("ANALYZE log_entries, entity_heads, log_heads"))
        conn.commit()


def log_size(superuser: Engine, tenant: str) -> int | None:
    """How many entries ``tenant``'s log holds; None for a tenant never written."""
    with superuser.connect() as conn:
        return conn.execute(
            text("SELECT size FROM log_heads WHERE tenant_id = :t"), {"t": tenant}
        ).scalar()


def tenant_name(prefix: str, size: int, seed: int = SEED, random_ids: bool = False) -> str:
    """The name ``seeded_tenant`` gives the tenant it seeds."""
    return f"{prefix}-s{seed}-n{size}" + ("-v4" if random_ids else "")


def seeded_tenant(prefix: str, size: int, seed: int = SEED, random_ids: bool = False) -> str:
    """A tenant named after its contents holding ``size`` seeded skills (created once per
    database: a second call with the same arguments finds it)."""
    from bench.db import superuser as superuser_engine

    tenant = tenant_name(prefix, size, seed, random_ids)
    eng = superuser_engine()
    have = log_size(eng, tenant)
    if have is None:
        write_skills(eng, tenant, 0, size, seed, random_ids)
        analyze(eng)
    elif have < size:  # more: the map commits its seals appended, or a bench's appends
        raise RuntimeError(f"{tenant} holds {have} entries, fewer than {size}")
    eng.dispose()
    return tenant
