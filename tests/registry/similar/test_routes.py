"""Similar skills over HTTP (issue 28, items 1-3): search by meaning with scores and filters,
a skill's neighbours, the near-duplicate check and refusal on create, the refresh that alone
writes vectors, and a tenant's search never reaching another tenant's skills."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from shared.registry import embeddings, skill_refresh, skill_vectors
from tests.registry.conftest import Api

SKILLS = {
    "Python coding": "Writes and reviews Python code.",
    "Python programming": "Develops software in the Python language.",
    "Beekeeping": "Keeps honey bee colonies and harvests honey.",
    "Arc welding": "Joins metal parts with an electric arc.",
}


@pytest.fixture(autouse=True)
def _needs_pgvector(app, database_url: str) -> None:
    from shared.storage.engine import database

    with database().transaction("probe") as conn:
        reason = skill_vectors.unavailable(conn)
    if reason:
        pytest.skip(f"the test server lacks pgvector: {reason}")


def _make(api: Api, name: str, category: str = "technical", **extra: Any) -> str:
    body = {"name": name, "description": SKILLS.get(name, "d"), "category": category, **extra}
    response = api.post("/skills", body)
    assert response.status_code == 201, response.json
    assert "similar" not in response.json
    return response.json["identity"]["id"]


def _vectors(superuser, tenant: str) -> dict[str, int]:
    with superuser.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT CAST(entity_id AS text), version FROM skill_embeddings WHERE tenant_id = :t"
            ),
            {"t": tenant},
        ).all()
    return {r[0]: r[1] for r in rows}


def _refresh(api: Api, make_token) -> dict[str, Any]:
    token = make_token(api.tenant, "auditor", subject="scheduler")
    response = api.client.post(
        "/registry/skills/embeddings/refresh", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.json
    return response.json


def _names(answer: dict[str, Any]) -> list[str]:
    return [i["skill"]["identity"]["name"] for i in answer["items"]]


def test_creates_write_no_vector_and_the_refresh_writes_each_live_skill_once(
    api: Api, make_token, superuser
) -> None:
    ids = {name: _make(api, name) for name in SKILLS}
    assert _vectors(superuser, api.tenant) == {}  # the default create path embeds nothing
    assert api.get("/skills?similar_to=Python").json["items"] == []
    assert _refresh(api, make_token)["embedded"] == 4
    assert _vectors(superuser, api.tenant) == {i: 1 for i in ids.values()}
    assert _refresh(api, make_token) == {
        "embedded": 0,
        "remaining": False,
        "model_id": embeddings.MODEL_ID,
    }
    # An amendment makes the vector stale; the next refresh embeds the new version.
    amended = api.patch(
        f"/skills/{ids['Arc welding']}",
        {
            "name": "Python scripting",
            "description": "Automates tasks with Python scripts.",
            "amendment_reason": "renamed",
        },
        **{"If-Match": '"v1"'},
    )
    assert amended.status_code == 200, amended.json
    assert _refresh(api, make_token)["embedded"] == 1
    assert _vectors(superuser, api.tenant)[ids["Arc welding"]] == 2
    top = api.get("/skills?similar_to=python%20scripts&limit=1").json
    assert _names(top) == ["Python scripting"]


def test_similar_to_ranks_live_skills_best_first_with_scores(api: Api, make_token) -> None:
    for name in SKILLS:
        _make(api, name)
    _refresh(api, make_token)
    answer = api.get("/skills?similar_to=Python%20development&limit=3").json
    assert set(_names(answer)[:2]) == {"Python coding", "Python programming"}
    scores = [i["similarity"] for i in answer["items"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert scores[1] > embeddings.SIMILAR_THRESHOLD > scores[2]
    assert answer["model_id"] == embeddings.MODEL_ID
    assert answer["threshold"] == embeddings.SIMILAR_THRESHOLD
    assert answer["items"][0]["skill"]["audit_trail"]["log_index"] >= 0  # the served document


def test_similar_to_combines_with_status_and_category_and_leaves_deprecated_out(
    api: Api, make_token
) -> None:
    coding = _make(api, "Python coding")
    _make(api, "Python programming", category="domain_expertise")
    gone = _make(api, "Python scripting")
    _refresh(api, make_token)  # a status change leaves the text, and the vector, as it was
    response = api.post(f"/skills/{gone}/status", {"status": "deprecated", "reason": "merged"})
    assert response.status_code == 200, response.json
    response = api.post(
        f"/skills/{coding}/status", {"status": "pending_certification", "reason": "ready"}
    )
    assert response.status_code == 200, response.json
    assert sorted(_names(api.get("/skills?similar_to=Python").json)) == [
        "Python coding",
        "Python programming",
    ]
    assert _names(api.get("/skills?similar_to=Python&category=domain_expertise").json) == [
        "Python programming"
    ]
    assert _names(api.get("/skills?similar_to=Python&status=draft").json) == ["Python programming"]
    assert _names(api.get("/skills?similar_to=Python&status=deprecated").json) == [
        "Python scripting"
    ]
    assert api.get("/skills?similar_to=Python&category=technical&status=draft").json == {
        "items": [],
        "model_id": embeddings.MODEL_ID,
        "threshold": embeddings.SIMILAR_THRESHOLD,
    }


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("similar_to=", "similar_to"),
        ("similar_to=%20%20", "similar_to"),
        ("similar_to=" + "a" * 1001, "similar_to"),
        ("similar_to=a%00b", "similar_to"),
        ("similar_to=a&limit=101", "limit"),
        ("similar_to=a&limit=0", "limit"),
        ("similar_to=a&q=py", "q"),
        ("similar_to=a&tag=x", "tag"),
        ("similar_to=a&cursor=MA", "cursor"),
        ("similar_to=a&status=alive", "status"),
        ("similar_to=a&nearest=1", "nearest"),
    ],
)
def test_a_bad_search_is_a_422_naming_the_parameter(api: Api, query: str, field: str) -> None:
    response = api.get(f"/skills?{query}")
    assert response.status_code == 422, response.json
    assert response.content_type == "application/problem+json"
    assert field in [e["field"] for e in response.json["errors"]]


def test_similar_to_is_for_skills_only(api: Api) -> None:
    response = api.get("/industries?similar_to=Python")
    assert response.status_code == 422
    assert response.json["errors"] == [
        {"field": "similar_to", "message": "is only taken by skills"}
    ]


def test_a_skill_s_neighbours_leave_it_out_and_need_no_refresh_of_it(api: Api, make_token) -> None:
    ids = {name: _make(api, name) for name in SKILLS}
    _refresh(api, make_token)
    new = _make(api, "Python software development")  # not refreshed: embedded on the spot
    answer = api.get(f"/skills/{new}/similar?limit=2").json
    assert set(_names(answer)) == {"Python coding", "Python programming"}
    answer = api.get(f"/skills/{ids['Python coding']}/similar?limit=5").json
    assert "Python coding" not in _names(answer)
    assert _names(answer)[0] == "Python programming"
    assert api.get(f"/industries/{new}/similar").status_code == 404
    assert api.get("/skills/00000000-0000-4000-8000-000000000000/similar").status_code == 404
    assert api.get("/skills/not-a-uuid/similar").status_code == 422


def test_check_similar_answers_201_with_the_near_duplicates(api: Api, make_token) -> None:
    for name in SKILLS:
        _make(api, name)
    _refresh(api, make_token)
    body = {"name": "Python", "description": "Programming in Python.", "category": "technical"}
    response = api.post("/skills?check_similar=true", body)
    assert response.status_code == 201, response.json
    near = response.json["similar"]
    assert {i["skill"]["identity"]["name"] for i in near} == {
        "Python coding",
        "Python programming",
    }
    assert all(i["similarity"] >= embeddings.SIMILAR_THRESHOLD for i in near)
    assert response.json["identity"]["name"] == "Python"
    # its vector was stored with it: the next check sees it without a refresh
    again = api.post(
        "/skills?check_similar=true",
        {
            "name": "Python language",
            "description": "Programming in Python.",
            "category": "technical",
        },
    )
    assert "Python" in {i["skill"]["identity"]["name"] for i in again.json["similar"]}
    unrelated = api.post(
        "/skills?check_similar=true",
        {"name": "Sourdough baking", "description": "Bakes bread.", "category": "technical"},
    )
    assert unrelated.status_code == 201 and unrelated.json["similar"] == []


def test_refuse_similar_is_a_409_naming_them_and_writes_nothing(
    api: Api, make_token, superuser
) -> None:
    for name in SKILLS:
        _make(api, name)
    _refresh(api, make_token)

    def heads() -> int:
        with superuser.connect() as conn:
            return conn.execute(
                text("SELECT count(*) FROM entity_heads WHERE tenant_id = :t"), {"t": api.tenant}
            ).scalar_one()

    before = heads()
    body = {"name": "Python", "description": "Programming in Python.", "category": "technical"}
    response = api.post("/skills?refuse_similar=true", body)
    assert response.status_code == 409, response.json
    assert response.content_type == "application/problem+json"
    named = {s["name"] for s in response.json["similar"]}
    assert named == {"Python coding", "Python programming"}
    assert all(s["similarity"] >= embeddings.SIMILAR_THRESHOLD for s in response.json["similar"])
    assert heads() == before
    assert len(_vectors(superuser, api.tenant)) == 4
    ok = api.post(
        "/skills?refuse_similar=true",
        {"name": "Sourdough baking", "description": "Bakes bread.", "category": "technical"},
    )
    assert ok.status_code == 201 and ok.json["similar"] == []
    assert heads() == before + 1


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/skills?check_similar=yes", {"name": "X", "category": "technical"}, 422, "check_similar"),
        ("/skills?refuse_similar=1", {"name": "X", "category": "technical"}, 422, "refuse_similar"),
        ("/industries?check_similar=true", {"name": "X", "description": "d"}, 422, "check_similar"),
        ("/skills?similar=true", {"name": "X", "category": "technical"}, 422, "similar"),
    ],
)
def test_a_bad_create_flag_is_a_422_and_writes_nothing(
    api: Api, superuser, path: str, body: dict[str, Any], status: int, field: str
) -> None:
    response = api.post(path, body)
    assert response.status_code == status, response.json
    assert field in [e["field"] for e in response.json["errors"]]
    with superuser.connect() as conn:
        count = conn.execute(
            text("SELECT count(*) FROM entity_heads WHERE tenant_id = :t"), {"t": api.tenant}
        ).scalar_one()
    assert count == 0


def test_an_invalid_body_with_check_similar_is_the_create_s_own_422(api: Api) -> None:
    response = api.post("/skills?refuse_similar=true", {"name": "", "category": "technical"})
    assert response.status_code == 422
    assert "name" in [v["field"] for v in response.json["violations"]]


def test_a_search_never_returns_another_tenant_s_skill(api: Api, app, make_token) -> None:
    other = Api(
        app.test_client(),
        f"{api.tenant}-b",
        {"Authorization": f"Bearer {make_token(api.tenant + '-b', 'author', 'reader')}"},
    )
    theirs = {_make(other, name) for name in SKILLS}
    _refresh(other, make_token)
    mine = _make(api, "Gardening")
    _refresh(api, make_token)
    reader = {"Authorization": f"Bearer {make_token(api.tenant, 'reader')}"}
    found = api.client.get("/registry/skills?similar_to=Python&limit=100", headers=reader).json
    assert [i["skill"]["identity"]["id"] for i in found["items"]] == [mine]
    for entity_id in theirs:  # their ids name nothing here, whatever the vector says
        response = api.client.get(f"/registry/skills/{entity_id}/similar", headers=reader)
        assert response.status_code == 404
    check = api.post(
        "/skills?check_similar=true",
        {"name": "Python coding", "description": SKILLS["Python coding"], "category": "technical"},
    )
    assert check.status_code == 201 and check.json["similar"] == []


def test_only_auditors_and_admins_refresh(api: Api, make_token) -> None:
    response = api.post("/skills/embeddings/refresh")  # an author and reader
    assert response.status_code == 403
    admin = make_token(api.tenant, "admin")
    response = api.client.post(
        "/registry/skills/embeddings/refresh", headers={"Authorization": f"Bearer {admin}"}
    )
    assert response.status_code == 200, response.json


def test_the_refresh_works_in_batches_and_stops_at_its_budget(api: Api, superuser) -> None:
    names = [f"Skill number {i}" for i in range(7)]
    for name in names:
        _make(api, name)
    done = skill_refresh.refresh(api.tenant, batch=3, budget=0.0)
    assert (done.embedded, done.remaining) == (3, True)
    done = skill_refresh.refresh(api.tenant, batch=3)
    assert (done.embedded, done.remaining) == (4, False)
    assert len(_vectors(superuser, api.tenant)) == 7


def test_search_is_served_by_the_hnsw_index_under_row_level_security(api: Api, superuser) -> None:
    """The statement a search runs, as the application role: the nearest-first order comes
    from the HNSW index (an Index Scan on skill_embeddings_nearest), not a sort of a scan."""
    import numpy as np

    from shared.storage.engine import database

    rng = np.random.default_rng(28)
    rows = []
    for _ in range(1000):
        v = rng.standard_normal(embeddings.DIMENSION)
        rows.append((str(uuid.uuid4()), 1, list(v / np.linalg.norm(v))))
    for start in range(0, len(rows), 200):  # each statement well within the statement timeout
        with database().transaction(api.tenant) as conn:
            skill_vectors.store(conn, api.tenant, rows[start : start + 200])
    with superuser.connect() as conn:
        conn.execute(text("ANALYZE skill_embeddings"))
    for status, category in ((None, None), ("draft", "technical")):
        sql = skill_vectors.ranked_sql(status, category, None)
        params = {"q": embeddings.vector_literal(rows[0][2]), "t": api.tenant}
        params |= {"m": embeddings.MODEL_ID, "n": 40, "limit": 10}
        params |= {k: v for k, v in (("status", status), ("category", category)) if v}
        with database().transaction(api.tenant) as conn:
            assert conn.execute(text("SELECT current_user")).scalar_one() == "plant_app"
            conn.execute(text("SET LOCAL hnsw.ef_search = 200"))
            plan = "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql), params))
        assert "Index Scan using skill_embeddings_nearest" in plan, plan
        assert "Seq Scan on skill_embeddings" not in plan, plan


def test_plant_embeddings_refresh_is_the_batch_path(api: Api, superuser, capsys) -> None:
    from shared import cli

    ids = {_make(api, name) for name in SKILLS}
    assert cli.main(["embeddings", "refresh", "--tenant", api.tenant]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["embedded"] == 4
    assert set(_vectors(superuser, api.tenant)) == ids
