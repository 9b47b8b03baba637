"""Tenants are isolated by row-level security, not only by WHERE clauses."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared.storage.engine import Database, local_engine
from tests.support.reliability_table import record


def test_another_tenant_cannot_read_list_evolve_or_reference(app, api, make_token, request):
    record(
        request.node,
        "cross-tenant read, list, amend, reference",
        1,
        "404 / empty list / refused; nothing leaks",
    )
    skill = api.skill("secret")
    other = {"Authorization": f"Bearer {make_token(api.tenant + '-b', 'author', 'reader')}"}
    client = app.test_client()
    assert client.get(f"/registry/skills/{skill}", headers=other).status_code == 404
    assert client.get(f"/registry/skills/{skill}/versions", headers=other).status_code == 404
    assert client.get("/registry/skills", headers=other).json["items"] == []
    patched = client.patch(
        f"/registry/skills/{skill}",
        json={"description": "x", "amendment_reason": "y"},
        headers={**other, "If-Match": '"v1"'},
    )
    assert patched.status_code == 404
    status = client.post(
        f"/registry/skills/{skill}/status",
        json={"status": "deprecated", "reason": "x"},
        headers=other,
    )
    assert status.status_code == 404
    body = {"name": "r", "description": "d", "required_skills": [skill], "seniority_level": "mid"}
    crossed = client.post("/registry/job-roles", json=body, headers=other)
    random_id = "00000000-0000-4000-8000-00000000abcd"
    unknown = client.post(
        "/registry/job-roles", json={**body, "required_skills": [random_id]}, headers=other
    )
    assert crossed.status_code == unknown.status_code == 422
    assert crossed.json["violations"][0]["rule"] == "L1-REF-01"
    assert crossed.json["violations"][0]["message"].replace(skill, "ID") == unknown.json[
        "violations"
    ][0]["message"].replace(random_id, "ID")


def test_raw_sql_as_the_app_role_sees_no_other_tenant_rows(api, database_url, request):
    record(
        request.node,
        "cross-tenant raw SQL as the app role (no WHERE)",
        1,
        "row-level security shows no other tenant's rows",
    )
    api.skill("hidden")
    db = Database(local_engine(database_url, 1, 5000))
    try:
        with db.transaction(api.tenant + "-b") as conn:
            for table in (
                "log_entries",
                "entity_heads",
                "log_heads",
                "log_nodes",
                "checkpoints",
                "audit_runs",
            ):
                assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0
            assert conn.execute(text("SELECT current_user")).scalar_one() == "plant_app"
        with db.transaction(api.tenant) as conn:
            assert conn.execute(text("SELECT count(*) FROM log_entries")).scalar_one() == 1
        # Writing into another tenant's rows is refused by the policy's WITH CHECK.
        with pytest.raises(DBAPIError) as caught, db.transaction(api.tenant) as conn:
            conn.execute(text("INSERT INTO log_heads (tenant_id, size) VALUES ('x', 0)"))
        assert "row-level security" in str(caught.value)
    finally:
        db.engine.dispose()
