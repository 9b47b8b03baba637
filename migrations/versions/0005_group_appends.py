"""Group commit: ``plant_append_versions`` appends many writers' versions in one statement.

Through a network (Cloud SQL is never local) each one-statement write still costs a round
trip, a commit and a WAL flush; concurrent writers of one process each paying them capped a
tenant's log below its target. The process now hands the versions that queue up while one
statement is in flight to the next statement together (``shared/storage/group.py``).

The function is ``plant_append_version`` applied to each item in order inside one
transaction: the result is exactly the one a serial run of the items would give. An item
that function refuses (its head or a reference moved: 40001; its unique key is taken, also by
an earlier item of the same group: PL409) is rolled back to a savepoint alone, gets a NULL
index and the others go on; its writer re-runs it alone, where the refusal reaches it as the
database's own error. Any other error aborts the whole statement, and every writer re-runs
alone. Items are taken in tenant order, and before each tenant's items the heads they will
re-check are locked (in id order), so a group, like a single write, takes heads first and the
counter last: it never waits for a head while holding a counter another writer waits for.
A group is at most 64 items: each accepted item is a subtransaction, and PostgreSQL keeps up
to 64 per transaction in shared memory before it overflows to disk.

``p_items`` is a JSON array of arrays: [tenant, kind, entity id, version, body hex, digest
hex, leaf hash hex, previous digest hex or null, field digests, actor, status, name,
category, unique key, check unique, at, expected head index or null, {reference id: index}].
Returns (item, index), item being the 1-based position in ``p_items``.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

FUNCTION = """
SET LOCAL ROLE plant_owner;

CREATE FUNCTION plant_append_versions(p_items jsonb)
RETURNS TABLE (item bigint, log_index bigint)
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public AS $$
DECLARE
  v_item jsonb;
  v_tenant text;
  v_refs uuid[];
  v_ref_indices bigint[];
BEGIN
  FOR v_item, item IN
    SELECT b.e, b.ord FROM jsonb_array_elements(p_items) WITH ORDINALITY AS b(e, ord)
     ORDER BY b.e->>0, b.ord
  LOOP
    IF v_tenant IS DISTINCT FROM v_item->>0 THEN
      -- Before this tenant's counter: lock, in id order, every head its items re-check
      -- (amended entities and references), as a single write locks them before the counter.
      -- Otherwise a later item would wait for a head while holding the counter another
      -- writer waits for: a deadlock.
      v_tenant := v_item->>0;
      PERFORM set_config('plant.tenant', v_tenant, true);
      PERFORM 1 FROM entity_heads h
       WHERE h.entity_id IN (
         SELECT CAST(e->>2 AS uuid) FROM jsonb_array_elements(p_items) AS e
          WHERE e->>0 = v_tenant AND CAST(e->>3 AS integer) > 1
         UNION
         SELECT CAST(p.key AS uuid)
           FROM jsonb_array_elements(p_items) AS e, jsonb_each_text(e->17) AS p
          WHERE e->>0 = v_tenant)
       ORDER BY h.entity_id FOR UPDATE;
    END IF;
    SELECT coalesce(array_agg(CAST(p.key AS uuid) ORDER BY p.key), '{}'),
           coalesce(array_agg(CAST(p.value AS bigint) ORDER BY p.key), '{}')
      INTO v_refs, v_ref_indices
      FROM jsonb_each_text(v_item->17) AS p;
    BEGIN
      log_index := plant_append_version(
        v_item->>0, v_item->>1, CAST(v_item->>2 AS uuid), CAST(v_item->>3 AS integer),
        decode(v_item->>4, 'hex'), decode(v_item->>5, 'hex'), decode(v_item->>6, 'hex'),
        decode(v_item->>7, 'hex'), v_item->8, v_item->>9, v_item->>10, v_item->>11,
        v_item->>12, v_item->>13, CAST(v_item->>14 AS boolean),
        CAST(v_item->>15 AS timestamptz), CAST(v_item->>16 AS bigint), v_refs, v_ref_indices);
    EXCEPTION WHEN SQLSTATE '40001' OR SQLSTATE 'PL409' THEN
      log_index := NULL;
    END;
    RETURN NEXT;
  END LOOP;
END $$;

REVOKE ALL ON FUNCTION plant_append_versions FROM PUBLIC;
GRANT EXECUTE ON FUNCTION plant_append_versions TO plant_app;
"""


def upgrade() -> None:
    op.execute(FUNCTION)
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS plant_append_versions")
