"""Search and counts: ``?q=`` (a folded name prefix) and ``?tag=`` (one exact tag) on every
kind's listing, with today's filters and cursor, and ``total`` (issue 23, item 7)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import text

from tests.support.reliability_table import record

KIND_BODIES = {
    "skills": {"description": "d", "category": "technical"},
    "industries": {"description": "d"},
}


def _all_pages(client, path: str, headers) -> tuple[list[dict[str, Any]], set[int]]:
    """Every item of a listing, page by page; and each page's ``total``."""
    items: list[dict[str, Any]] = []
    totals: set[int] = set()
    url = path
    while True:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.json
        items += response.json["items"]
        totals.add(response.json["total"])
        cursor = response.json["next_cursor"]
        if cursor is None:
            return items, totals
        url = f"{path}&cursor={cursor}"


def _names(items: list[dict[str, Any]]) -> list[str]:
    return [item["identity"]["name"] for item in items]


def test_q_matches_a_folded_name_prefix_with_total(registry_client, create, reader):
    for name in ("Python", "python scripting", "PYTHONIC", "Jython", "Rust", "Pyt"):
        create("skills", name=name, description="d", category="technical")
    for q in ("pyth", "PYTH", "Pyth", "\uff30\uff59\uff54\uff48"):  # the last fullwidth "Pyth"
        response = registry_client.get(f"/registry/skills?q={q}", headers=reader)
        assert response.status_code == 200, response.json
        assert sorted(_names(response.json["items"])) == ["PYTHONIC", "Python", "python scripting"]
        assert response.json["total"] == 3
    # a prefix of the whole name, not of any word; and the whole name matches itself
    assert registry_client.get("/registry/skills?q=scripting", headers=reader).json["total"] == 0
    assert _names(registry_client.get("/registry/skills?q=rust", headers=reader).json["items"]) == [
        "Rust"
    ]


def test_q_is_an_exact_prefix_at_the_ends_of_unicode(registry_client, create, reader):
    top = "\U0010ffff"  # the last code point: a prefix range may not end at q + top
    for name in (f"Ab{top}c", f"ab{top}", "Abc", "Ab\ud7ffx", "Ab\ue000"):
        create("skills", name=name, description="d", category="technical")

    def found(q: str) -> list[str]:
        response = registry_client.get(f"/registry/skills?q={quote(q)}", headers=reader)
        assert response.status_code == 200, response.json
        return sorted(_names(response.json["items"]))

    assert found("ab") == sorted([f"Ab{top}c", f"ab{top}", "Abc", "Ab\ud7ffx", "Ab\ue000"])
    assert found(f"ab{top}") == sorted([f"Ab{top}c", f"ab{top}"])
    assert found("ab\ud7ff") == ["Ab\ud7ffx"]
    assert found(top) == []


@pytest.mark.parametrize("slug", sorted(KIND_BODIES))
def test_every_kind_takes_q_and_tag(registry_client, create, reader, slug):
    body = KIND_BODIES[slug]
    create(slug, name="Alpha one", tags=["x"], **body)
    create(slug, name="alpha two", tags=["y"], **body)
    create(slug, name="Beta", tags=["x"], **body)
    found = registry_client.get(f"/registry/{slug}?q=ALPHA&tag=x", headers=reader).json
    assert (_names(found["items"]), found["total"]) == (["Alpha one"], 1)
    assert registry_client.get(f"/registry/{slug}", headers=reader).json["total"] == 3


def test_q_tag_status_category_and_cursor_combine_and_total_holds_on_every_page(
    registry_client, create, certified_skill, reader
):
    made = []
    for i in range(7):
        made.append(
            create(
                "skills",
                name=f"Data skill {i}",
                description="d",
                category="technical" if i % 2 else "domain_expertise",
                tags=["data", f"n{i}"] if i != 3 else ["other"],
            )["identity"]["name"]
        )
    create("skills", name="Database admin", description="d", category="technical", tags=["ops"])
    certified_skill("Data certified")  # certified, no tag
    items, totals = _all_pages(registry_client, "/registry/skills?q=data%20s&limit=2", reader)
    assert _names(items) == made and totals == {7}
    items, totals = _all_pages(registry_client, "/registry/skills?tag=data&limit=2", reader)
    assert _names(items) == [n for i, n in enumerate(made) if i != 3] and totals == {6}
    items, totals = _all_pages(
        registry_client, "/registry/skills?q=data&tag=data&category=technical&limit=1", reader
    )
    assert _names(items) == ["Data skill 1", "Data skill 5"] and totals == {2}
    items, totals = _all_pages(
        registry_client, "/registry/skills?q=DATA&status=draft&limit=3", reader
    )
    assert len(items) == 8 and totals == {8}  # "Data certified" is not a draft
    items, totals = _all_pages(registry_client, "/registry/skills?q=data&status=certified", reader)
    assert _names(items) == ["Data certified"] and totals == {1}


def test_an_amendment_moves_the_name_and_tags_search_finds(registry_client, create, author, reader):
    doc = create("skills", name="Golang", description="d", category="technical", tags=["go"])
    entity_id = doc["identity"]["id"]
    response = registry_client.patch(
        f"/registry/skills/{entity_id}",
        json={"name": "Rust lang", "tags": ["rust"], "amendment_reason": "renamed"},
        headers={**author, "If-Match": '"v1"'},
    )
    assert response.status_code == 200, response.json
    for query, total in (("q=go", 0), ("tag=go", 0), ("q=rust", 1), ("tag=rust", 1)):
        found = registry_client.get(f"/registry/skills?{query}", headers=reader).json
        assert found["total"] == total, query
        assert [i["versioning"]["version"] for i in found["items"]] == [2] * total


def test_other_tenants_entities_are_never_found_or_counted(
    request, registry_client, create, reader, bearer
):
    create("skills", name="Shared name", description="d", category="technical", tags=["t"])
    other = bearer("t-other-search", "author", "reader")
    for i in range(3):
        response = registry_client.post(
            "/registry/skills",
            json={
                "name": f"Shared name {i}",
                "description": "d",
                "category": "technical",
                "tags": ["t"],
            },
            headers=other,
        )
        assert response.status_code in (201, 409), response.json
    for query in ("q=shared", "tag=t", "q=shared&tag=t"):
        found = registry_client.get(f"/registry/skills?{query}", headers=reader).json
        assert (_names(found["items"]), found["total"]) == (["Shared name"], 1), query
    record(
        request.node,
        "cross-tenant search and count (q, tag)",
        3,
        "only the caller's tenant is found and counted",
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("q=", "q"),
        ("q=" + "a" * 201, "q"),
        ("q=a%00b", "q"),
        ("tag=", "tag"),
        ("tag=" + "t" * 65, "tag"),
        ("tag=a%00", "tag"),
    ],
)
def test_bad_q_or_tag_is_a_422_naming_it(request, registry_client, reader, query, field):
    response = registry_client.get(f"/registry/skills?{query}", headers=reader)
    assert response.status_code == 422, response.json
    assert response.mimetype == "application/problem+json"
    assert [e["field"] for e in response.json["errors"]] == [field]
    record(request.node, f"search filter {query[:12]!r}", 1, f"422 problem+json naming `{field}`")


def test_the_longest_q_and_tag_are_taken(registry_client, reader):
    response = registry_client.get(f"/registry/skills?q={'a' * 200}&tag={'t' * 64}", headers=reader)
    assert response.status_code == 200, response.json
    assert response.json == {"items": [], "total": 0, "next_cursor": None}


def _plan(tenant: str, **wanted: Any) -> str:
    """The plan of a listing's page statement, as the application role under RLS."""
    from shared.storage import heads
    from shared.storage.engine import database

    sql, params = heads.page_sql(heads.Filter("skill", **wanted))
    with database().transaction(tenant) as conn:
        role = conn.execute(text("SELECT current_user")).scalar_one()
        rows = conn.execute(text("EXPLAIN " + sql), {**params, "after": -1, "limit": 51}).all()
    assert role == "plant_app"
    return "\n".join(r[0] for r in rows)


def test_q_and_tag_are_served_by_their_indexes_under_row_level_security(
    registry_client, author, tenant, superuser
):
    items = [
        {
            "name": f"{chr(97 + i % 26)}{i:05d} skill",
            "description": "d",
            "category": "technical",
            "tags": [f"tag{i % 500}"],
        }
        for i in range(5000)
    ]
    response = registry_client.post("/registry/skills/batch", json={"items": items}, headers=author)
    assert response.status_code == 201, response.json
    with superuser.connect() as conn:
        conn.execute(text("ANALYZE entity_heads"))
        conn.execute(text("ANALYZE entity_tags"))
    by_name = _plan(tenant, q="q00016")
    assert "Index Scan using entity_heads_by_name" in by_name, by_name
    assert "AND (name_folded >= 'q00016'::text COLLATE \"C\")" in by_name, by_name  # index cond
    assert "Seq Scan on entity_heads" not in by_name, by_name
    by_tag = _plan(tenant, tag="tag7")
    assert "Index Scan using entity_tags_by_tag" in by_tag, by_tag
    assert "AND (tag = 'tag7'::text))" in by_tag, by_tag
    assert "Seq Scan" not in by_tag, by_tag
    found = registry_client.get("/registry/skills?tag=tag7&limit=500", headers=author).json
    assert found["total"] == 10 and len(found["items"]) == 10
