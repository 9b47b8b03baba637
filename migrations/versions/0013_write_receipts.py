"""Signed write receipts (issue 22): each log entry's receipt, stored beside it.

``log_receipts`` holds one row per signature: an entry receipt (``count`` 1, ``leaves`` null)
or a batch receipt over [first_idx, first_idx + count) with the range's leaf hashes joined
(``leaves``, 32 bytes each: the signed root covers them, so the audit can name the one entry
of a batch that differs). Bytes: ``docs/formats.md`` ("Write receipts").

``receipt_cutover`` records, per tenant that already had entries, the log size at this
migration: the entries before it were written without receipts. The first seal after it signs
one batch receipt over [0, size) (never past the tenant's first receipt written by a write),
so every entry has a receipt and the audit needs no exception (``shared/tlog/receipts.py``).

Both tables are append-only (as ``log_entries``) under forced row-level security; the
application role may only read and insert.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

from shared.storage.migrate import migration_module

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TABLES = ("log_receipts", "receipt_cutover")

SCHEMA = """
CREATE TABLE log_receipts (
  tenant_id text   NOT NULL,
  first_idx bigint NOT NULL CHECK (first_idx >= 0),
  count     bigint NOT NULL CHECK (count >= 1),
  receipt   bytea  NOT NULL,
  leaves    bytea  CHECK (leaves IS NULL OR length(leaves) = 32 * count),
  PRIMARY KEY (tenant_id, first_idx)
);

CREATE TABLE receipt_cutover (
  tenant_id text   PRIMARY KEY,
  size      bigint NOT NULL CHECK (size >= 0)
);
INSERT INTO receipt_cutover (tenant_id, size) SELECT tenant_id, size FROM log_heads
  WHERE size > 0;

REVOKE ALL ON log_receipts, receipt_cutover FROM PUBLIC;
GRANT SELECT, INSERT ON log_receipts TO plant_app;
GRANT SELECT ON receipt_cutover TO plant_app;
"""


def upgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    # The owner reads every tenant's log size: row-level security is lifted from log_heads
    # for the cut-over's one INSERT ... SELECT only, inside this migration's transaction.
    op.execute("ALTER TABLE log_heads NO FORCE ROW LEVEL SECURITY")
    op.execute(SCHEMA)
    op.execute("ALTER TABLE log_heads FORCE ROW LEVEL SECURITY")
    append_only = migration_module("0002_merkle_log").append_only  # as log_nodes, checkpoints
    for table in TABLES:
        op.execute(append_only(table))
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute("DROP TABLE IF EXISTS receipt_cutover")
    op.execute("DROP TABLE IF EXISTS log_receipts")
    op.execute("RESET ROLE")
