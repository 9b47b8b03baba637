"""A team's agents are found by probing the team's ids, whatever the statistics say.

Migration 0012 indexed live agents on ``(tenant_id, team_id)``, and ``membership`` asks for
``team_id = ANY(:teams)``. With no statistics of ``entity_heads`` (a new database, or after
statistics were dropped) the planner estimates one row for the tenant, with or without the
teams as an index condition, so the two paths cost the same to within its fuzz and it kept the
one that reads every live agent of the tenant and filters on the team. No estimate separates
them there, so, as migration 0030 did for the uniqueness probes, the choice is made not to
depend on one:

- the index now leads with ``team_id`` (team ids are unique across tenants, so the tenant
  follows it): a scan of it that does not name the teams reads the whole index, never a tie;
- its predicate also holds ``plant_team_listed(team_id)``, true for any team (strict: false
  for none) but priced at 1,000,000 operators a call (``COST``), and the query states that
  same clause: on this index it is implied by the predicate and never evaluated, on any other
  path it is a filter costing 2,500 units a row. (0030's 10,000 operators, 25 units a row,
  is not enough here: a page of teams is one descent of the index per team, a few pages
  each, and the planner took another index at a one-row estimate.)

Which agents a team has does not change: agents without a team were never in the index.

Revision ID: 0031
Revises: 0030
"""

from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None

LIVE_AGENTS = "kind = 'agent' AND status NOT IN ('suspended', 'deprecated')"

UPGRADE = f"""
-- True for any team; strict, so false for none. Priced far above what it costs, so that a
-- path evaluating it (any path but the team index, whose predicate implies it) is never
-- chosen for the membership query, which states it.
CREATE FUNCTION plant_team_listed(p_team text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE COST 1000000 AS $$
BEGIN
  RETURN true;
END $$;
REVOKE ALL ON FUNCTION plant_team_listed FROM PUBLIC;
GRANT EXECUTE ON FUNCTION plant_team_listed TO plant_app;
DROP INDEX entity_heads_team_members;
CREATE INDEX entity_heads_team_members ON entity_heads (team_id, tenant_id)
  WHERE {LIVE_AGENTS} AND plant_team_listed(team_id);
"""

DOWNGRADE = f"""
DROP INDEX entity_heads_team_members;
CREATE INDEX entity_heads_team_members ON entity_heads (tenant_id, team_id)
  WHERE {LIVE_AGENTS};
DROP FUNCTION plant_team_listed(text);
"""


def upgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute(UPGRADE)
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute(DOWNGRADE)
    op.execute("RESET ROLE")
