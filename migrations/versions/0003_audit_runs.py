"""Audit runs: one row per run, with its findings.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = """
SET LOCAL ROLE plant_owner;

CREATE TABLE audit_runs (
  tenant_id       text        NOT NULL,
  id              uuid        NOT NULL,
  mode            text        NOT NULL CHECK (mode IN ('incremental', 'full')),
  status          text        NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
  requested_by    text        NOT NULL,
  started_at      timestamptz NOT NULL DEFAULT now(),
  finished_at     timestamptz,
  verified_from   bigint,
  verified_to     bigint,
  checkpoint_size bigint,
  finding_count   integer,
  findings        jsonb,
  summary         jsonb,
  PRIMARY KEY (tenant_id, id)
);
-- At most one running audit per tenant: a second request finds the first.
CREATE UNIQUE INDEX audit_runs_one_running ON audit_runs (tenant_id) WHERE status = 'running';
CREATE INDEX audit_runs_recent ON audit_runs (tenant_id, started_at DESC);

REVOKE ALL ON audit_runs FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON audit_runs TO plant_app;
ALTER TABLE audit_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_runs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_runs
  USING (tenant_id = current_setting('plant.tenant', true))
  WITH CHECK (tenant_id = current_setting('plant.tenant', true));
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS audit_runs")
