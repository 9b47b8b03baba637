"""Concurrent writers: contiguous indices, and exactly one winner per version."""

from __future__ import annotations

import threading

from sqlalchemy import text


def test_20_threads_appending_get_contiguous_indices(app, api, superuser):
    barrier = threading.Barrier(20)
    statuses = []

    def write(n: int) -> None:
        client = app.test_client()
        barrier.wait()
        for i in range(3):
            body = {"name": f"s{n}-{i}", "description": "d", "category": "technical"}
            statuses.append(
                client.post("/registry/skills", json=body, headers=api.headers).status_code
            )

    threads = [threading.Thread(target=write, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [201] * 60
    with superuser.connect() as conn:
        indices = [
            r[0]
            for r in conn.execute(
                text("SELECT idx FROM log_entries WHERE tenant_id = :t ORDER BY idx"),
                {"t": api.tenant},
            )
        ]
        size = conn.execute(
            text("SELECT size FROM log_heads WHERE tenant_id = :t"), {"t": api.tenant}
        ).scalar_one()
    assert indices == list(range(60)) and size == 60


def test_two_concurrent_patches_with_the_same_if_match_one_wins(app, api):
    skill = api.skill("race")
    barrier = threading.Barrier(2)
    results = []

    def patch(n: int) -> None:
        client = app.test_client()
        barrier.wait()
        response = client.patch(
            f"/registry/skills/{skill}",
            json={"description": f"d{n}", "amendment_reason": "race"},
            headers={**api.headers, "If-Match": '"v1"'},
        )
        results.append(response.status_code)

    threads = [threading.Thread(target=patch, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 412]
    assert [v["version"] for v in api.get(f"/skills/{skill}/versions").json["versions"]] == [1, 2]
