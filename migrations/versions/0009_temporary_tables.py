"""The application role may create temporary tables in its database, by a grant of its own.

A bulk create stages its items in a temporary table (``shared.storage.ledger``): PostgreSQL
refuses ``COPY FROM`` into a table with row-level security. Until now the role had that right
only through PUBLIC's default ``TEMPORARY`` privilege, so a database hardened by revoking it
from PUBLIC would refuse every batch. The grant is made when the migrating user may make it
(the database's owner, a member of the owner's role, or a superuser); otherwise the
migration says which grant the owner has to run.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _where_allowed(statement: str, otherwise: str = "NULL;") -> str:
    """A DO block that runs ``statement`` (``%I`` naming the current database) when the
    migrating user may grant TEMPORARY on it, and ``otherwise`` when not."""
    return f"""
DO $$
BEGIN
  IF has_database_privilege(current_user, current_database(), 'TEMPORARY WITH GRANT OPTION')
  THEN
    EXECUTE format('{statement}', current_database());
  ELSE
    {otherwise}
  END IF;
END $$;
"""


UPGRADE = _where_allowed(
    "GRANT TEMPORARY ON DATABASE %I TO plant_app",
    "RAISE WARNING 'bulk creates need GRANT TEMPORARY ON DATABASE % TO plant_app; '\n"
    "                  'run it as the database owner (% may not grant it)',\n"
    "      current_database(), current_user;",
)
DOWNGRADE = _where_allowed("REVOKE TEMPORARY ON DATABASE %I FROM plant_app")


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
