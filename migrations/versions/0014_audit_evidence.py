"""Audit history is evidence: each completed audit run's report is appended to the tenant's
log as an entry of its own (``entry_type`` 'audit', kind 'audit_run', the run's id as its
entity id, version 1; bytes in docs/formats.md), so that deleting or rewriting a run is a
finding and an incremental audit resumes from what the log says it verified, not from the
mutable ``audit_runs`` table. A partial index finds a tenant's newest report with one probe.

Revision ID: 0014
Revises: 0013
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE log_entries DROP CONSTRAINT log_entries_entry_type_check;
ALTER TABLE log_entries ADD CONSTRAINT log_entries_entry_type_check
  CHECK (entry_type IN ('version', 'certificate', 'audit'));
CREATE INDEX log_entries_audits ON log_entries (tenant_id, idx) WHERE entry_type = 'audit';
"""

DOWNGRADE = """
DROP INDEX log_entries_audits;
ALTER TABLE log_entries DROP CONSTRAINT log_entries_entry_type_check;
ALTER TABLE log_entries ADD CONSTRAINT log_entries_entry_type_check
  CHECK (entry_type IN ('version', 'certificate')) NOT VALID;
"""


def upgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute(UPGRADE)
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute(DOWNGRADE)
    op.execute("RESET ROLE")
