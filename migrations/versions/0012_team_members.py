"""A team's live agents are found with one index probe (``shared/registry/membership.py``).

A team's members are the live agents whose current version names it as their ``team_id``.
An agent's head already holds that id, as the last part of its uniqueness key (``skill|job
role|team``, ``-`` for none, written with the version in the same statement); this derives it
into a column of its own (``team_id``, null for other kinds and for an agent in no team) and
indexes it among live agents' heads. A column, not an index on ``split_part(unique_key, ...)``:
that function is not leakproof, so under row-level security (the application role) PostgreSQL
only filters with it, reading every live agent of the tenant; a plain column's equality is an
index condition. The database derives the column (as 0010 derives the key's readings), so
neither write function changes, and no logged byte does.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE entity_heads
  ADD COLUMN team_id text GENERATED ALWAYS AS (
    CASE WHEN kind = 'agent' THEN NULLIF(split_part(unique_key, '|', 3), '-') END
  ) STORED;
CREATE INDEX entity_heads_team_members ON entity_heads (tenant_id, team_id)
  WHERE kind = 'agent' AND status NOT IN ('suspended', 'deprecated');
"""


def upgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute(UPGRADE)
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute("DROP INDEX IF EXISTS entity_heads_team_members")
    op.execute("ALTER TABLE entity_heads DROP COLUMN IF EXISTS team_id")
    op.execute("RESET ROLE")
