"""``plant_append_version`` sets the tenant and skips the pins without the executor (issue 27).

Each SQL statement a PL/pgSQL function runs goes through the executor: its cached plan
checked, a snapshot taken, its nodes set up and torn down. Two of a create's eight did nothing
a plain expression could not:

- ``PERFORM set_config('plant.tenant', ...)`` is now an assignment, which PL/pgSQL evaluates
  as a simple expression, without the executor (the same call, the same setting);
- ``PERFORM plant_check_pins(...)`` ran for every version, and the function returned at once
  for one without references (most creates): it is now called only when the version has
  references, the test it made itself (``cardinality(p_refs) > 0``; NULL or empty skips it).

Measured, the function's own time a call, the two bodies alternating call by call in one
session as the application role: 1-25 us less of 240-420 us (``docs/performance.md``,
"Append"). Merging the two uniqueness probes into one statement (a ``UNION ALL``) and the
entry, head and tags into one (a data-modifying ``WITH``) were measured too and cost more
than the statements they saved: not done.

What is written and refused is unchanged: the same rows, the same counter, the same errors
(40001 for a moved head or pin, PL409 with the holder for a taken key, 23505 for a version
logged twice), in the same order of checks.

Revision ID: 0033
Revises: 0032
"""

from alembic import op

from shared.storage.migrate import migration_module

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None

TENANT_OLD = "  PERFORM set_config('plant.tenant', p_tenant, true);\n"
TENANT_NEW = """  -- An assignment, not PERFORM: a simple expression, run without the executor.
  v_tenant := set_config('plant.tenant', p_tenant, true);
"""
PINS_OLD = "  PERFORM plant_check_pins(p_refs, p_ref_indices);\n"
PINS_NEW = """  IF cardinality(p_refs) > 0 THEN
    PERFORM plant_check_pins(p_refs, p_ref_indices);
  END IF;
"""
DECLARE_OLD = "  v_first bigint;\nBEGIN\n"
DECLARE_NEW = "  v_first bigint;\n  v_tenant text;\nBEGIN\n"


def append_function(new: bool) -> str:
    """``plant_append_version`` as 0030 left it, or with this revision's two changes."""
    text = migration_module("0030_reading_probes")._functions(new=True)
    text = text[: text.index("CREATE OR REPLACE FUNCTION plant_batch_items(")]
    if new:
        for old, replacement in (
            (TENANT_OLD, TENANT_NEW),
            (PINS_OLD, PINS_NEW),
            (DECLARE_OLD, DECLARE_NEW),
        ):
            assert text.count(old) == 1
            text = text.replace(old, replacement)
    return text


def upgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute(append_function(new=True))
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE plant_owner")
    op.execute(append_function(new=False))
    op.execute("RESET ROLE")
