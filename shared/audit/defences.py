"""The database's own defences, audited from the catalog (queries the application role may
run): the ledger tables are ordinary tables owned by the owner role, their append-only
triggers enabled, row-level security enabled and forced under the migrations' policies, no
relation, rule or function shadowing them, and every ``plant_*`` SQL function byte-for-byte
the definition the migrations installed (SHA-256 of ``pg_get_functiondef``, recorded in
``catalog_digests``, which ``python -m shared.audit.defences`` regenerates from a migrated
database). Each departure is a finding of its own kind, in section ``database``."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared.audit import catalog_digests
from shared.audit.state import AuditState

SCHEMA = "public"
OWNER = "plant_owner"
# Tables whose rows the audit reads as evidence, and the triggers that keep them append-only
LEDGER: tuple[str, ...] = ("log_entries", "log_nodes", "checkpoints", "log_heads", "entity_heads")
LEDGER += ("audit_runs",)
# the write receipts (issue 22), the witnesses' cosignatures (issue 25), the map of heads (24)
LEDGER += ("log_receipts", "receipt_cutover", "checkpoint_cosignatures", "heads_map_strata")
APPEND_ONLY = {
    table: (f"{table}_append_only", f"{table}_no_truncate")
    for table in (
        "log_entries",
        "log_nodes",
        "checkpoints",
        "log_receipts",
        "receipt_cutover",
        "checkpoint_cosignatures",
    )
}

_TABLES = text(
    "SELECT c.relname, n.nspname, c.relkind, pg_get_userbyid(c.relowner), c.relrowsecurity, "
    "c.relforcerowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relname = ANY(CAST(:names AS text[])) AND c.relkind IN ('r', 'v', 'm', 'p', 'f')"
)
_TRIGGERS = text(
    "SELECT c.relname, t.tgname, t.tgenabled FROM pg_trigger t JOIN pg_class c "
    "ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = :schema AND c.relname = ANY(CAST(:names AS text[])) AND NOT t.tgisinternal"
)
_RULES = text(
    "SELECT c.relname, r.rulename FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = :schema AND c.relname = ANY(CAST(:names AS text[])) AND c.relkind = 'r'"
)
_POLICIES = text(
    "SELECT c.relname, p.polname, p.polcmd, p.polpermissive, "
    "array_to_string(ARRAY(SELECT rolname FROM pg_roles WHERE oid = ANY(p.polroles) "
    "ORDER BY rolname), ','), coalesce(pg_get_expr(p.polqual, p.polrelid), ''), "
    "coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '') FROM pg_policy p "
    "JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = :schema ORDER BY 1, 2"
)
_FUNCTIONS = text(
    "SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) "
    "|| ')', pg_get_functiondef(p.oid), pg_get_userbyid(p.proowner) FROM pg_proc p "
    "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.proname LIKE 'plant\\_%' "
    "AND p.prokind IN ('f', 'p')"
)


def functions(conn: Connection) -> dict[str, str]:
    """Every ``plant_*`` function in any schema: signature -> hex SHA-256 of its definition
    (``pg_get_functiondef``'s UTF-8 text) and its owner, as ``<hex> <owner>``."""
    return {
        signature: f"{hashlib.sha256(definition.encode()).hexdigest()} {owner}"
        for signature, definition, owner in conn.execute(_FUNCTIONS)
    }


def policies(conn: Connection) -> dict[str, str]:
    """Every row-level security policy in the schema: ``table.policy`` -> hex SHA-256 of
    ``cmd|permissive|roles|using|with check``."""
    return {
        f"{table}.{name}": hashlib.sha256(
            "|".join(str(v) for v in (cmd, permissive, roles, qual, check)).encode()
        ).hexdigest()
        for table, name, cmd, permissive, roles, qual, check in conn.execute(
            _POLICIES, {"schema": SCHEMA}
        )
    }


def checked(state: AuditState) -> None:
    """Each departure of the catalog from what the migrations installed, named."""
    conn = state.conn
    names = "{" + ",".join(LEDGER) + "}"
    _tables(state, conn.execute(_TABLES, {"names": names}).all())
    triggers = {
        (t, name): enabled
        for t, name, enabled in conn.execute(_TRIGGERS, {"schema": SCHEMA, "names": names})
    }
    for table, expected in APPEND_ONLY.items():
        for name in expected:
            enabled = triggers.get((table, name))
            if enabled not in ("O", "A"):
                state.add(
                    "trigger_disabled",
                    f"trigger {name} on {table} is {'missing' if enabled is None else 'disabled'}",
                    section="database",
                    field=f"{table}.{name}",
                )
    for table, rule in conn.execute(_RULES, {"schema": SCHEMA, "names": names}):
        _add(state, "shadowed", f"rule {rule} rewrites statements on {table}", f"{table}.{rule}")
    _digests(state, "rls_disabled", "policy", policies(conn), catalog_digests.POLICIES)
    _digests(state, "function_changed", "function", functions(conn), catalog_digests.FUNCTIONS)


def _add(state: AuditState, kind: str, detail: str, what: str) -> None:
    state.add(kind, detail, section="database", field=what)


def _tables(state: AuditState, rows: Sequence[Any]) -> None:
    """Each ledger table: an ordinary table in the schema owned by the owner role, under
    row-level security enabled and forced; a relation of its name elsewhere shadows it."""
    found = set()
    for name, schema, relkind, owner, rls, forced in rows:
        if schema != SCHEMA:
            if not schema.startswith("pg_toast"):
                _add(state, "shadowed", f"{schema}.{name} shadows the ledger table", name)
            continue
        found.add(name)
        if relkind != "r" or owner != OWNER:
            what = {"v": "a view", "m": "a materialized view", "p": "partitioned", "f": "foreign"}
            _add(
                state,
                "table_replaced",
                f"{name} is {what.get(relkind, 'a table')} owned by {owner}",
                name,
            )
        elif not (rls and forced):
            _add(
                state,
                "rls_disabled",
                f"row-level security on {name} is not enabled and forced",
                name,
            )
    for name in LEDGER:
        if name not in found:
            _add(state, "table_replaced", f"ledger table {name} is gone", name)


def _digests(
    state: AuditState, kind: str, what: str, found: dict[str, str], expected: dict[str, str]
) -> None:
    """Objects whose digest departs from what the migrations installed: changed, missing,
    or added (a function of a ledger function's name in another schema shadows it)."""
    for name in sorted(found.keys() | expected.keys()):
        have, want = found.get(name), expected.get(name)
        if have == want:
            continue
        if have is None:
            detail = f"{what} {name} is missing"
        elif want is None:
            detail = f"{what} {name} was not installed by a migration"
        else:
            detail = f"{what} {name} differs from the one the migrations installed"
        shadow = kind == "function_changed" and want is None
        _add(state, "shadowed" if shadow else kind, detail, name)


def generated(conn: Connection) -> str:
    """The source of ``catalog_digests`` for the database ``conn`` reads."""
    lines = [
        "# ruff: noqa: E501 (generated: a signature per line)",
        '"""Expected digests of the SQL functions and row-level security policies the',
        "migrations install (``shared.audit.defences``). Generated: ``python -m",
        'shared.audit.defences`` against a freshly migrated database; never edited by hand."""',
        "",
        "FUNCTIONS = {",
        *(f'    "{k}": "{v}",' for k, v in sorted(functions(conn).items())),
        "}",
        "",
        "POLICIES = {",
        *(f'    "{k}": "{v}",' for k, v in sorted(policies(conn).items())),
        "}",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover (a developer's tool)
    from shared.storage.engine import database

    with database().engine.connect() as connection:
        sys.stdout.write(generated(connection))
