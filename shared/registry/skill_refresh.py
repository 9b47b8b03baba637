"""The refresh: embed every live skill whose vector is missing or older than its head.

Creates and amends never embed (their p50 pays nothing for this feature). The refresh
catches up instead, in batches of :data:`BATCH` skills: read a batch of stale heads in one
short transaction, embed them outside any transaction, upsert them in another
(``skill_vectors.store`` never moves a vector back to an older version, so two refreshes may
race). It runs from Cloud Scheduler every 5 minutes per tenant (``POST
/registry/skills/embeddings/refresh``, terraform/scheduler.tf), from the command line as the
batch path (``plant embeddings refresh --tenant T``) and on demand by an auditor or admin.
A vector is therefore at most one scheduler period plus one run's time behind its skill; a
run takes stale skills / ~85 per second on one instance (bench/embeddings.py), and a route
run stops starting rounds after 40 s (``remaining``: the next run goes on), so a tenant
writing under ~3,400 skills per period stays within 5 min + 40 s; a larger backlog (an
import) is the CLI's, which has no budget.

Seals are not a trigger: they live in shared/tlog and the log function, which may not load
registry code (tests/architecture); the scheduled refresh follows them within its period.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from shared.registry import similar, skill_vectors
from shared.storage.engine import database

BATCH = 256  # skills a round reads, embeds and stores: ~3 s of model time
BUDGET_SECONDS = 40.0  # no round starts after this: the registry's request timeout is 60 s


@dataclass(frozen=True)
class Refreshed:
    embedded: int
    remaining: bool  # stale skills were left for the next run (the budget ran out)

    def answer(self) -> dict[str, object]:
        from shared.registry.embeddings import MODEL_ID

        return {"embedded": self.embedded, "remaining": self.remaining, "model_id": MODEL_ID}


def refresh(tenant: str, *, budget: float = BUDGET_SECONDS, batch: int = BATCH) -> Refreshed:
    """Embed the tenant's stale live skills, batch by batch, until none is left or ``budget``
    seconds have passed (501 where the database has no pgvector)."""
    from shared.registry import embeddings

    started = time.monotonic()
    done = 0
    with database().transaction(tenant) as conn:
        similar.require_vectors(conn)
    while True:
        with database().transaction(tenant) as conn:
            rows = skill_vectors.stale(conn, tenant, batch)
        if rows:
            vectors = embeddings.embed([similar.text_of(body) for _, _, body in rows])
            with database().transaction(tenant) as conn:
                skill_vectors.store(
                    conn,
                    tenant,
                    [(e, v, x) for (e, v, _), x in zip(rows, vectors, strict=True)],
                )
            done += len(rows)
        if len(rows) < batch:
            return Refreshed(done, False)
        if time.monotonic() - started > budget:
            return Refreshed(done, True)
