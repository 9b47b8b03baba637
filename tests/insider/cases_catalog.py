"""The matrix's rows on the database's own defences (issue 22, "Must exist" 3), one per ledger
table and object: every append-only trigger disabled, row-level security disabled or not
forced and the owner changed on every ledger table, a table of a ledger table's name in
another schema, every ``plant_*`` function and every tenant policy redefined. Each is undone
after its audits (the catalog is shared by the whole test session)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.audit import catalog_digests, defences
from tests.insider.attacks import Attack, Case, catalog
from tests.insider.conftest import Tenant

_SAVED: dict[str, Any] = {}


def _database(kind: str, field: str) -> Callable[[Tenant], dict[str, Any]]:
    return lambda t: dict(kind=kind, section="database", field=field)


def _function_tweaked(signature: str) -> Attack:
    """The function's installed definition with an insider's comment in its body (what it
    does unchanged: only its bytes differ from what the migration installed)."""

    def run(t: Tenant, attack: Callable[..., None]) -> None:
        definition = t.one(
            "SELECT pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n "
            "ON n.oid = p.pronamespace WHERE n.nspname || '.' || p.proname || '(' || "
            "pg_get_function_identity_arguments(p.oid) || ')' = :f",
            f=signature,
        )[0]
        _SAVED[signature] = definition
        attack(definition.replace("AS $function$", "AS $function$\n-- an insider's edit\n", 1))

    return run


def _policy_opened(table: str) -> Attack:
    """The tenant policy made to let every row through, its expressions kept to restore."""

    def run(t: Tenant, attack: Callable[..., None]) -> None:
        _SAVED[table] = t.one(
            "SELECT pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid) "
            "FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid "
            "WHERE c.relname = :r AND p.polname = 'tenant_isolation'",
            r=table,
        )
        attack(f"ALTER POLICY tenant_isolation ON {table} USING (true)")

    return run


def _policy_restored(table: str) -> Attack:
    def run(t: Tenant, attack: Callable[..., None]) -> None:
        using, check = _SAVED.pop(table)
        attack(
            f"ALTER POLICY tenant_isolation ON {table} USING ({using})"
            + (f" WITH CHECK ({check})" if check else "")
        )

    return run


def _trigger_dropped(table: str, name: str) -> Attack:
    def run(t: Tenant, attack: Callable[..., None]) -> None:
        _SAVED[name] = t.one(
            "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = :n", n=name
        )[0]
        attack(f"DROP TRIGGER {name} ON {table}")

    return run


CASES: list[Case] = []
for _table, _triggers in defences.APPEND_ONLY.items():
    for _trigger in _triggers:
        if _trigger == "log_entries_append_only":
            continue  # the first row of the matrix
        CASES.append(
            Case(
                "catalog",
                f"trigger {_trigger} disabled",
                catalog(f"ALTER TABLE {_table} DISABLE TRIGGER {_trigger}"),
                _database("trigger_disabled", f"{_table}.{_trigger}"),
                undo=catalog(f"ALTER TABLE {_table} ENABLE TRIGGER {_trigger}"),
            )
        )
CASES.append(
    Case(
        "catalog",
        "trigger log_nodes_append_only dropped",
        _trigger_dropped("log_nodes", "log_nodes_append_only"),
        _database("trigger_disabled", "log_nodes.log_nodes_append_only"),
        undo=lambda t, attack: attack(_SAVED.pop("log_nodes_append_only")),
    )
)
for _table in defences.LEDGER:
    CASES.append(
        Case(
            "catalog",
            f"row-level security disabled on {_table}",
            catalog(f"ALTER TABLE {_table} DISABLE ROW LEVEL SECURITY"),
            _database("rls_disabled", _table),
            undo=catalog(f"ALTER TABLE {_table} ENABLE ROW LEVEL SECURITY"),
        )
    )
    if _table != "log_nodes":  # the matrix's first table: tests/insider/test_matrix.py
        CASES.append(
            Case(
                "catalog",
                f"row-level security not forced on {_table}",
                catalog(f"ALTER TABLE {_table} NO FORCE ROW LEVEL SECURITY"),
                _database("rls_disabled", _table),
                undo=catalog(f"ALTER TABLE {_table} FORCE ROW LEVEL SECURITY"),
            )
        )
    CASES.append(
        Case(
            "catalog",
            f"{_table} given to another owner",
            catalog(f"ALTER TABLE {_table} OWNER TO postgres"),
            _database("table_replaced", _table),
            undo=catalog(f"ALTER TABLE {_table} OWNER TO {defences.OWNER}"),
        )
    )
for _table in ("checkpoints", "log_receipts"):
    CASES.append(
        Case(
            "catalog",
            f"a table named {_table} in another schema",
            catalog(
                "CREATE SCHEMA shadow_tables",
                f"CREATE TABLE shadow_tables.{_table} (LIKE public.{_table})",
            ),
            _database("shadowed", _table),
            undo=catalog("DROP SCHEMA shadow_tables CASCADE"),
        )
    )
for _name in sorted(catalog_digests.FUNCTIONS):
    if _name.startswith("public.plant_refuse_change("):
        continue  # the matrix's first function: tests/insider/test_matrix.py
    CASES.append(
        Case(
            "catalog",
            f"function {_name.split('(')[0]} redefined",
            _function_tweaked(_name),
            _database("function_changed", _name),
            undo=lambda t, attack, n=_name: attack(_SAVED.pop(n)),
        )
    )
for _name in sorted(catalog_digests.POLICIES):
    _table = _name.split(".")[0]
    CASES.append(
        Case(
            "catalog",
            f"policy {_name} opened to every row",
            _policy_opened(_table),
            _database("rls_disabled", _name),
            undo=_policy_restored(_table),
        )
    )
