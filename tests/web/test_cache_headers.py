"""Caching: no per-tenant answer is ever `public` to a shared cache. Every route's answer is
`no-store`, or `private` (the caller's own cache only) with `Vary: Authorization`; only healthz and
the OpenAPI document, the same for everyone and served without a token, are not marked
per-caller. Every route is requested (the table must name each one) on a tenant with data.
One exception, by C2SP tlog-tiles (issue 25): a FULL tile is immutable and served
``public, max-age=31536000, immutable`` with ``Vary: Authorization`` (tests/tlog/
test_tiles_api.py); the partial tile requested here is private."""

from __future__ import annotations

from typing import Any

from tests.support.reliability_table import record
from tests.support.routes import served

# (method, template) -> (query, JSON body or None); reads first, then writes.
REQUESTS: dict[tuple[str, str], tuple[str, Any]] = {
    ("GET", "/registry/openapi.json"): ("", None),
    ("GET", "/registry/healthz"): ("", None),
    ("GET", "/registry/{kind}/{entity_id}/proof/current"): ("", None),
    ("GET", "/registry/{kind}/{entity_id}/versions/{version}/proof"): ("", None),
    ("GET", "/registry/{kind}/{entity_id}/versions/{version}"): ("", None),
    ("GET", "/registry/{kind}/{entity_id}/versions"): ("", None),
    ("GET", "/registry/{kind}/{entity_id}/similar"): ("", None),
    ("GET", "/registry/{kind}/{entity_id}"): ("", None),
    ("GET", "/registry/{kind}"): ("", None),
    ("GET", "/log/openapi.json"): ("", None),
    ("GET", "/log/healthz"): ("", None),
    ("GET", "/log/checkpoint"): ("", None),
    ("GET", "/log/checkpoints"): ("size=2", None),  # the skill and the seal's map commit
    ("GET", "/log/entries/{index}"): ("", None),
    ("GET", "/log/proofs/inclusion"): ("index=0", None),
    ("GET", "/log/proofs/consistency"): ("old=1&new=2", None),
    ("GET", "/log/keys"): ("", None),
    ("GET", "/log/tiles/{tenant}/checkpoint"): ("", None),
    ("GET", "/log/tiles/{tenant}/{tile}"): ("", None),
    ("GET", "/witness/openapi.json"): ("", None),
    ("GET", "/witness/healthz"): ("", None),
    ("GET", "/certify/openapi.json"): ("", None),
    ("GET", "/certify/healthz"): ("", None),
    ("GET", "/certify/rules"): ("", None),
    ("GET", "/certify/{kind}/{entity_id}/certificates"): ("", None),
    ("GET", "/audit/openapi.json"): ("", None),
    ("GET", "/audit/healthz"): ("", None),
    ("GET", "/audit/runs"): ("", None),
    ("GET", "/audit/runs/{run_id}"): ("", None),
    ("GET", "/audit/entities/{kind}/{entity_id}"): ("", None),
    ("GET", "/export/openapi.json"): ("", None),
    ("GET", "/export/healthz"): ("", None),
    ("GET", "/export/report"): ("format=csv", None),
    ("GET", "/export/report/certificate"): ("", None),
    ("GET", "/export/bundle"): ("", None),
    ("POST", "/log/seal"): ("", None),
    ("POST", "/registry/skills/embeddings/refresh"): ("", None),
    ("POST", "/witness/add-checkpoint"): ("", None),
    ("POST", "/audit/runs"): ("", {"mode": "incremental"}),
    ("POST", "/registry/{kind}/{entity_id}/status"): (
        "",
        {"status": "pending_certification", "reason": "ready"},
    ),
    ("POST", "/certify/{kind}/{entity_id}"): ("", None),
    ("POST", "/certify/batch"): ("", {"items": [{"kind": "skills", "id": "{entity_id}"}]}),
    ("PATCH", "/registry/{kind}/{entity_id}"): ("", {"description": "e", "amendment_reason": "r"}),
    ("POST", "/registry/agents/{entity_id}/team"): ("", {"team_id": None}),
    ("POST", "/registry/{kind}/batch"): (
        "",
        {"items": [{"name": "Cached 2", "description": "d", "category": "technical"}]},
    ),
    ("POST", "/registry/{kind}"): (
        "",
        {"name": "Cached 3", "description": "d", "category": "technical"},
    ),
}


def test_the_table_names_every_route():
    assert {s.key for s in served()} == set(REQUESTS)


def test_no_answer_is_cacheable_by_a_shared_cache(clients, make_token, tenant, request):
    author = {"Authorization": f"Bearer {make_token(tenant, 'author', subject='ann')}"}
    admin = {"Authorization": f"Bearer {make_token(tenant, 'admin', subject='root')}"}
    created = clients["registry"].post(
        "/registry/skills",
        json={"name": "Cached", "description": "d", "category": "technical"},
        headers=author,
    )
    skill = created.json["identity"]["id"]
    assert clients["log"].post("/log/seal", headers=admin).status_code == 201
    run = clients["audit"].post("/audit/runs", headers=admin).json["id"]
    routes = {s.key: s for s in served()}
    answers = {}
    for key, (query, body) in REQUESTS.items():
        route = routes[key]
        url = route.url(entity_id=skill, run_id=run, tenant=tenant) + (f"?{query}" if query else "")
        if isinstance(body, dict) and "items" in body and "id" in body["items"][0]:
            body = {"items": [{"kind": "skills", "id": skill}]}
        headers = {**admin, "If-Match": '"v2"'} if route.method == "PATCH" else admin
        response = clients[route.function].open(
            url, method=route.method, json=body, headers=headers
        )
        response.get_data()
        answers[key] = response
    record(
        request.node,
        "cacheable per-tenant responses (every route)",
        len(answers),
        "none public; per-tenant answers private or no-store, with Vary: Authorization",
    )
    reads = [k for k in answers if k[0] == "GET"]
    assert all(answers[k].status_code == 200 for k in reads), {
        k: (answers[k].status_code, answers[k].get_data()[:200])
        for k in reads
        if answers[k].status_code != 200
    }
    for key, response in answers.items():
        cache = response.headers.getlist("Cache-Control")
        assert len(cache) == 1 and "public" not in cache[0], (key, cache)
        if routes[key].route.public:
            assert cache == ["no-store"], (key, cache)
            continue
        assert cache[0] == "no-store" or cache[0].startswith("private"), (key, cache)
        if cache[0] != "no-store":  # a cache may keep it: never for another caller
            assert "Authorization" in response.headers.get("Vary", ""), (key, response.headers)


def test_a_checkpoint_is_private_to_its_caller(clients, make_token, tenant):
    """Issue 20 #8: `/log/checkpoint` said `public, max-age=10` with no `Vary: Authorization`."""
    author = {"Authorization": f"Bearer {make_token(tenant, 'author', subject='ann')}"}
    auditor = {"Authorization": f"Bearer {make_token(tenant, 'auditor')}"}
    clients["registry"].post(
        "/registry/skills",
        json={"name": "Noted", "description": "d", "category": "technical"},
        headers=author,
    )
    clients["log"].post("/log/seal", headers=auditor)
    for url in ("/log/checkpoint", "/log/checkpoints?size=2", "/log/keys"):
        response = clients["log"].get(url, headers=auditor)
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "private, max-age=10", url
        assert response.headers["Vary"] == "Authorization", url
