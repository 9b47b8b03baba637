"""The application role cannot rewrite history: grants and triggers both refuse it."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared.storage.engine import local_engine
from tests.support.reliability_table import record

LEDGER = ("log_entries", "log_nodes", "checkpoints")
STATEMENTS = ("UPDATE {t} SET tenant_id = tenant_id", "DELETE FROM {t}", "TRUNCATE {t}")


@pytest.fixture
def app_engine(database_url):
    engine = local_engine(database_url, 1, 5000)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("table", LEDGER)
@pytest.mark.parametrize("statement", STATEMENTS)
def test_app_role_cannot_update_delete_or_truncate(app_engine, api, table, statement, request):
    record(
        request.node,
        "rewrite history as the app role (UPDATE/DELETE/TRUNCATE)",
        1,
        "permission denied",
    )
    api.skill("x")
    with pytest.raises(DBAPIError) as caught, app_engine.begin() as conn:
        conn.execute(text("SELECT set_config('plant.tenant', :t, true)"), {"t": api.tenant})
        conn.execute(text(statement.format(t=table)))
    assert "permission denied" in str(caught.value)


@pytest.mark.parametrize("statement", STATEMENTS)
def test_triggers_refuse_even_the_owner(superuser, api, statement, request):
    record(
        request.node,
        "rewrite history as the owner (UPDATE/DELETE/TRUNCATE)",
        1,
        "refused by the append-only triggers",
    )
    api.skill("y")
    with pytest.raises(DBAPIError) as caught, superuser.connect() as conn:
        conn.execute(text(statement.format(t="log_entries")))
    assert "append-only" in str(caught.value)
