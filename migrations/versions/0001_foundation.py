"""Foundation: roles, the append-only ledger, entity heads, row-level security.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Roles are cluster-wide: created only if missing, so several databases can share a server.
ROLES = """
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'plant_owner') THEN
    CREATE ROLE plant_owner NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'plant_app') THEN
    CREATE ROLE plant_app NOLOGIN;
  END IF;
  IF NOT pg_has_role(current_user, 'plant_owner', 'MEMBER') THEN
    EXECUTE format('GRANT plant_owner TO %I', current_user);
  END IF;
END $$;
GRANT USAGE, CREATE ON SCHEMA public TO plant_owner;
"""

# Cloud: the functions log in as IAM database users listed in PLANT_APP_DB_USERS (set by the
# migration step); each becomes a member of plant_app and nothing more.
GRANT_APP_USERS = """
DO $$
DECLARE u text;
BEGIN
  FOREACH u IN ARRAY string_to_array(coalesce(current_setting('plant.app_db_users', true), ''), ',')
  LOOP
    u := btrim(u);
    IF u <> '' AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = u) THEN
      EXECUTE format('GRANT plant_app TO %I', u);
    END IF;
  END LOOP;
END $$;
"""

SCHEMA = """
SET LOCAL ROLE plant_owner;

CREATE FUNCTION plant_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$;

-- The ledger: every version and certificate, one row per leaf of the tenant's Merkle log.
-- body holds the RFC 8785 canonical bytes exactly as hashed; leaf_hash = SHA-256(0x00 || body).
CREATE TABLE log_entries (
  tenant_id     text        NOT NULL,
  idx           bigint      NOT NULL CHECK (idx >= 0),
  entry_type    text        NOT NULL CHECK (entry_type IN ('version', 'certificate')),
  kind          text        NOT NULL,
  entity_id     uuid        NOT NULL,
  version       integer     NOT NULL CHECK (version >= 1),
  body          bytea       NOT NULL,
  digest        bytea       NOT NULL,
  leaf_hash     bytea       NOT NULL,
  prev_digest   bytea,
  field_digests jsonb       NOT NULL,
  actor         text        NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, idx)
);
CREATE UNIQUE INDEX log_entries_one_version
  ON log_entries (tenant_id, entity_id, version) WHERE entry_type = 'version';
CREATE INDEX log_entries_by_entity ON log_entries (tenant_id, entity_id, idx);

CREATE TRIGGER log_entries_append_only BEFORE UPDATE OR DELETE ON log_entries
  FOR EACH ROW EXECUTE FUNCTION plant_refuse_change();
CREATE TRIGGER log_entries_no_truncate BEFORE TRUNCATE ON log_entries
  FOR EACH STATEMENT EXECUTE FUNCTION plant_refuse_change();

-- Next free index of each tenant's log. The row lock taken by the increment is what keeps
-- indices contiguous under concurrent writers.
CREATE TABLE log_heads (
  tenant_id text   PRIMARY KEY,
  size      bigint NOT NULL CHECK (size >= 0)
);

-- Current state of each entity: a projection of the ledger (the audit re-derives it).
CREATE TABLE entity_heads (
  tenant_id   text        NOT NULL,
  entity_id   uuid        NOT NULL,
  kind        text        NOT NULL,
  version     integer     NOT NULL,
  status      text        NOT NULL,
  name        text        NOT NULL,
  category    text,
  unique_key  text,
  first_index bigint      NOT NULL,
  log_index   bigint      NOT NULL,
  created_at  timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, entity_id)
);
CREATE UNIQUE INDEX entity_heads_unique_live
  ON entity_heads (tenant_id, kind, unique_key)
  WHERE unique_key IS NOT NULL AND status <> 'deprecated';
CREATE INDEX entity_heads_listing ON entity_heads (tenant_id, kind, first_index);
CREATE INDEX entity_heads_by_status ON entity_heads (tenant_id, kind, status, first_index);

REVOKE ALL ON log_entries, log_heads, entity_heads FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO plant_app;
GRANT SELECT, INSERT ON log_entries TO plant_app;
GRANT SELECT, INSERT, UPDATE ON log_heads, entity_heads TO plant_app;
"""

RLS_TABLES = ("log_entries", "log_heads", "entity_heads")


def rls(table: str) -> str:
    return f"""
ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON {table}
  USING (tenant_id = current_setting('plant.tenant', true))
  WITH CHECK (tenant_id = current_setting('plant.tenant', true));
"""


def upgrade() -> None:
    op.execute(ROLES)
    op.execute(GRANT_APP_USERS)
    op.execute(SCHEMA)
    for table in RLS_TABLES:
        op.execute(rls(table))
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS entity_heads, log_heads, log_entries")
    op.execute("DROP FUNCTION IF EXISTS plant_refuse_change()")
    op.execute("REVOKE ALL ON SCHEMA public FROM plant_app, plant_owner")
    # Roles are shared by every database on the server: drop them only when nothing else uses them.
    op.execute(
        """
DO $$
BEGIN
  BEGIN
    DROP ROLE IF EXISTS plant_app;
  EXCEPTION WHEN dependent_objects_still_exist THEN NULL;
  END;
  BEGIN
    DROP ROLE IF EXISTS plant_owner;
  EXCEPTION WHEN dependent_objects_still_exist THEN NULL;
  END;
END $$;
"""
    )
