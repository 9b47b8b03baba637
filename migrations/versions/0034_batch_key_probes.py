"""A batch's key check may probe the reading indexes item by item (issue 27).

``plant_batch_items`` (migrations 0021, 0024, 0030) joined the batch's items to the tenant's
live heads on ``h.unique_reading_1 = plant_key_reading(i.unique_key, 1)``. For the
application role, whose reads pass the tenant policy first, a condition holding functions
that are not leakproof (``plant_key_reading`` is ``NULLIF(split_part(...))``) is not made an
index condition of the inner side, so the planner could only hash or merge the items with
every live head of the kind. Into a tenant of 1,000,000 skills it merged: the walk of
``entity_heads_live_reading_1`` read about a million index entries and 980,000 buffers
(7.7 s on the local PostgreSQL 15 at load 12; a 10,000-item batch into that tenant took 7 s
in the full benchmark of 2026-12-07, against 0.7 s in that of 2026-12-02).

Each item's reading is now made in a subquery kept apart by ``OFFSET 0``, so the join
compares the reading column with a plain value: a probe of the reading index an item
becomes a path the planner may take, and takes when the tenant is large (0.29 s there:
20,000 probes), while it still hashes the items against a small or new tenant's heads
(0.08-0.10 s for 10,000 items, as before). Which items are refused, and with which holder, does
not change.

Revision ID: 0034
Revises: 0033
"""

from alembic import op

from shared.storage.migrate import migration_module

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None


def _join(n: int, probed: bool) -> str:
    """The items joined to the live heads holding their reading ``n``: as 0030 wrote it, or
    with each item's reading made in a subquery the planner keeps apart (``probed``)."""
    first = (
        "SELECT i.ord, h.entity_id AS holder, h.name AS holder_name, -1 AS rank"
        if n == 1
        else "SELECT i.ord, h.entity_id, h.name, -1"
    )
    items = "pg_temp.plant_items i"
    reading = f"plant_key_reading(i.unique_key, {n})"
    if probed:
        items = (
            f"(SELECT ord, plant_key_reading(unique_key, {n}) AS reading\n"
            "                      FROM pg_temp.plant_items OFFSET 0) AS i"
        )
        reading = "i.reading"
    return (
        f"{first}\n"
        f"              FROM {items}\n"
        "              JOIN entity_heads h\n"
        "                ON h.tenant_id = p_tenant AND h.kind = p_kind"
        " AND h.status <> 'deprecated'\n"
        f"               AND h.unique_reading_{n} = {reading}\n"
        f"               AND plant_reading_held(h.unique_reading_{n})\n"
    )


def _function(probed: bool) -> str:
    """``plant_batch_items`` as 0030 left it, or with its readings kept apart."""
    text = migration_module("0030_reading_probes")._functions(new=True)
    text = text[text.index("CREATE OR REPLACE FUNCTION plant_batch_items(") :]
    if probed:
        for n in (1, 2):
            assert text.count(_join(n, probed=False)) == 1, n
            text = text.replace(_join(n, probed=False), _join(n, probed=True))
    return text


def upgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute(_function(probed=True))
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute(_function(probed=False))
    op.execute("RESET ROLE")
