"""Witnessed checkpoints (issue 25): the cosignatures witnesses returned on a tenant's
checkpoints, and, for the witness function, the size and root it last cosigned per log.

``checkpoint_cosignatures`` is the tenant's (row-level security, append-only like
``checkpoints``): one verified ``cosignature/v1`` line per (size, witness), served after the
log's own signature. ``witness_checkpoints`` belongs to a witness (``functions/witness.py``),
which is tenant-independent: one row per log origin, updated only by a compare-and-set on the
size read under ``SELECT ... FOR UPDATE`` in the same transaction.

Revision ID: 0016
Revises: 0015
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE checkpoint_cosignatures (
  tenant_id  text        NOT NULL,
  size       bigint      NOT NULL CHECK (size >= 0),
  witness    text        NOT NULL CHECK (witness <> ''),
  line       text        NOT NULL CHECK (line LIKE '— %'),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, size, witness),
  FOREIGN KEY (tenant_id, size) REFERENCES checkpoints (tenant_id, size)
);
CREATE TRIGGER checkpoint_cosignatures_append_only BEFORE UPDATE OR DELETE
  ON checkpoint_cosignatures FOR EACH ROW EXECUTE FUNCTION plant_refuse_change();
CREATE TRIGGER checkpoint_cosignatures_no_truncate BEFORE TRUNCATE ON checkpoint_cosignatures
  FOR EACH STATEMENT EXECUTE FUNCTION plant_refuse_change();
ALTER TABLE checkpoint_cosignatures ENABLE ROW LEVEL SECURITY;
ALTER TABLE checkpoint_cosignatures FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON checkpoint_cosignatures
  USING (tenant_id = current_setting('plant.tenant', true))
  WITH CHECK (tenant_id = current_setting('plant.tenant', true));
REVOKE ALL ON checkpoint_cosignatures FROM PUBLIC;
GRANT SELECT, INSERT ON checkpoint_cosignatures TO plant_app;

CREATE TABLE witness_checkpoints (
  origin     text        PRIMARY KEY,
  size       bigint      NOT NULL CHECK (size >= 0),
  root       bytea       NOT NULL CHECK (length(root) = 32),
  note       text        NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON witness_checkpoints FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON witness_checkpoints TO plant_app;
"""


def upgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute(UPGRADE)
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute("DROP TABLE IF EXISTS checkpoint_cosignatures, witness_checkpoints")
    op.execute("RESET ROLE")
