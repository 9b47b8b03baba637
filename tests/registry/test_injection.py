"""Hostile text is data: stored verbatim, returned as JSON, never executed."""

from __future__ import annotations

from sqlalchemy import text

from tests.support.reliability_table import record

HOSTILE = [
    "'); DROP TABLE log_entries;--",
    "<script>alert(1)</script>",
    '" OR 1=1 --',
    "Robert'); SELECT pg_sleep(5);--",
]


def test_sql_and_html_are_stored_verbatim(api, superuser, request):
    record(
        request.node,
        "SQL and HTML injection in text fields",
        len(HOSTILE),
        "stored and served verbatim as JSON; tables intact",
    )
    for i, value in enumerate(HOSTILE):
        response = api.post("/industries", {"name": value, "description": value + f" {i}"})
        assert response.status_code == 201
        assert response.mimetype == "application/json"
        doc = api.get(f"/industries/{response.json['identity']['id']}").json
        assert doc["identity"]["name"] == value
    with superuser.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('log_entries')")).scalar_one() is not None
        bodies = [
            bytes(r[0]).decode()
            for r in conn.execute(
                text("SELECT body FROM log_entries WHERE tenant_id = :t"), {"t": api.tenant}
            )
        ]
    for value in HOSTILE:
        encoded = value.replace("\\", "\\\\").replace('"', '\\"')
        assert any(encoded in body for body in bodies)
