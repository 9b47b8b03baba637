"""``log_nodes``' primary key carries the hash: a node read is one index probe, no heap page.

A proof's nodes are read by key, about 2,000 random probes for 200 proofs at 1,000,000
leaves. Each probe descended the primary key and then fetched the row's heap page for its
hash: at 1,000,000 leaves the table (190 MB) and its key (170 MB) outgrow a default 128 MB
buffer pool, and the heap pages, one per node at random, were the pages most often read
back (issue 27, decision 5). The key now includes the hash (``INCLUDE (hash)``, still unique
on ``(tenant_id, level, idx)``), so a read is an index-only scan wherever the visibility map
says the page is all-visible, as an append-only table's pages soon are (autovacuum after
inserts); a page not yet marked is read from the heap as before, so no read depends on it.
Measured: the server's CPU for the same proofs halved, and the rebuilt key (181 MB) is
barely larger than the old one, whose inserts in the seal's order had left it half full.

The key is built before the old one goes, then swapped in under the old name, in one
transaction: writes to ``log_nodes`` (seals) wait while it builds (about ten seconds at
2,000,000 nodes on this machine).

Revision ID: 0025
Revises: 0021
"""

from alembic import op

revision = "0025"
down_revision = "0021"
branch_labels = None
depends_on = None


def _swap(include: str) -> str:
    return f"""
CREATE UNIQUE INDEX log_nodes_key_next ON log_nodes (tenant_id, level, idx) {include};
ALTER TABLE log_nodes DROP CONSTRAINT log_nodes_pkey,
  ADD CONSTRAINT log_nodes_pkey PRIMARY KEY USING INDEX log_nodes_key_next;
"""


def upgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute(_swap("INCLUDE (hash)"))
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute(_swap(""))
    op.execute("RESET ROLE")
