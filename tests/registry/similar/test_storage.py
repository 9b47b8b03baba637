"""skill_embeddings (migration 0017): tenant-isolated for the application role, ranked by its
HNSW index, and absent with a clear reason on a server without pgvector (issue 28, items 1,
2 and 5)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared.registry import embeddings, skill_vectors
from shared.storage.engine import Database, local_engine


@pytest.fixture(scope="module")
def app_db(database_url: str) -> Iterator[Database]:
    db = Database(local_engine(database_url, 2, 60_000))
    with db.transaction("probe") as conn:
        reason = skill_vectors.unavailable(conn)
    if reason:
        db.engine.dispose()
        pytest.skip(f"the test server lacks pgvector: {reason}")
    yield db
    db.engine.dispose()


def _unit(rng: np.random.Generator) -> list[float]:
    v = rng.standard_normal(embeddings.DIMENSION)
    return list(v / np.linalg.norm(v))


def test_a_search_never_returns_another_tenant_s_skill(app_db: Database) -> None:
    a, b = f"sim-a-{uuid.uuid4().hex[:8]}", f"sim-b-{uuid.uuid4().hex[:8]}"
    texts = {"Python coding": a, "Python programming": a, "Python": b, "Beekeeping": b}
    vectors = embeddings.embed(list(texts))
    ids = {name: str(uuid.uuid4()) for name in texts}
    for tenant in (a, b):
        with app_db.transaction(tenant) as conn:
            rows = [
                (ids[n], 1, v) for n, v in zip(texts, vectors, strict=True) if texts[n] == tenant
            ]
            skill_vectors.store(conn, tenant, rows)
    query = embeddings.embed(["Python"])[0]
    with app_db.transaction(a) as conn:
        got = skill_vectors.nearest(conn, a, query, 10)
        # Naming the other tenant in the query changes nothing: the policy filters first.
        assert skill_vectors.nearest(conn, b, query, 10) == []
        assert conn.execute(text("SELECT count(*) FROM skill_embeddings")).scalar_one() == 2
        assert conn.execute(text("SELECT current_user")).scalar_one() == "plant_app"
    assert {n.entity_id for n in got} == {ids["Python coding"], ids["Python programming"]}
    assert got[0].similarity >= got[1].similarity > embeddings.SIMILAR_THRESHOLD
    with pytest.raises(DBAPIError, match="row-level security"), app_db.transaction(a) as conn:
        skill_vectors.store(conn, b, [(str(uuid.uuid4()), 1, query)])


def test_a_refresh_never_puts_back_an_older_version(app_db: Database) -> None:
    tenant, entity = f"sim-v-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    old, new = embeddings.embed(["Welding", "Python coding"])
    with app_db.transaction(tenant) as conn:
        skill_vectors.store(conn, tenant, [(entity, 2, new)])
        skill_vectors.store(conn, tenant, [(entity, 1, old)])
        version = conn.execute(text("SELECT version FROM skill_embeddings")).scalar_one()
        best = skill_vectors.nearest(conn, tenant, new, 1)
    assert version == 2 and best[0].similarity > 0.999


def test_nearest_is_served_by_the_hnsw_index_not_a_scan(app_db: Database, superuser) -> None:
    tenant = f"sim-i-{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(28)
    with app_db.transaction(tenant) as conn:
        skill_vectors.store(conn, tenant, [(str(uuid.uuid4()), 1, _unit(rng)) for _ in range(1000)])
    with superuser.connect() as conn:
        conn.execute(text("ANALYZE skill_embeddings"))  # the owner's to run
    with app_db.transaction(tenant) as conn:
        conn.execute(text("SET LOCAL hnsw.ef_search = 200"))
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                text(
                    "EXPLAIN SELECT entity_id FROM skill_embeddings "
                    "WHERE tenant_id = :t AND model_id = :m "
                    "ORDER BY embedding <=> CAST(:q AS vector) LIMIT 10"
                ),
                {
                    "t": tenant,
                    "m": embeddings.MODEL_ID,
                    "q": embeddings.vector_literal(_unit(rng)),
                },
            )
        )
        assert "skill_embeddings_nearest" in plan, plan
        assert len(skill_vectors.nearest(conn, tenant, _unit(rng), 10)) == 10
