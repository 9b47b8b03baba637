"""Random JSON at every writing route and random query values at the reading ones: the
answer is always a 2xx/4xx, never a 5xx (hypothesis; the caller holds every role)."""

from __future__ import annotations

import json
import os
import string
import uuid
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.reliability_table import tally

FIELDS = [
    "name",
    "description",
    "category",
    "tags",
    "custom_attributes",
    "required_skills",
    "seniority_level",
    "skill_id",
    "job_role_id",
    "industry_id",
    "team_id",
    "agents",
    "governance_agent_id",
    "external_id",
    "amendment_reason",
    "status",
    "reason",
    "version",
    "items",
    "kind",
    "id",
    "mode",
]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5), inner, max_size=6)
    ),
    max_leaves=15,
)
EXAMPLES = int(os.environ.get("PLANT_GARBAGE_EXAMPLES") or 300)  # make test-reliability: more
PATHS = [
    "/registry/skills",
    "/registry/job-roles",
    "/registry/agents",
    "/registry/teams",
    "/registry/industries",
    "/registry/skills/{id}",
    "/registry/skills/{id}/status",
    "/registry/agents/{id}/team",
    "/certify/skills/{id}",
    "/certify/batch",
    "/audit/runs",
    "/log/seal",
    "/registry/skills?limit={q}&cursor={q}",
    "/log/proofs/inclusion?index={q}&size={q}",
    "/log/proofs/consistency?old={q}&new={q}",
    "/export/report?format={q}",
    "/export/bundle?entity={q}",
]


@pytest.fixture(scope="module")
def skill(clients, database_url):
    from shared.config import settings as cfg
    from shared.security.local_tokens import LocalTokens

    token = LocalTokens.from_settings(cfg()).issue("fuzzer", "fuzz", ["author"])
    response = clients["registry"].post(
        "/registry/skills",
        json={"name": f"fz{uuid.uuid4().hex[:6]}", "description": "d", "category": "technical"},
        headers={"Authorization": f"Bearer {token}"},
    )
    return response.json["identity"]["id"]


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=JSON,
    path=st.sampled_from(PATHS),
    method=st.sampled_from(["POST", "PATCH", "GET"]),
    query=st.text(max_size=8),
    if_match=st.text(alphabet=string.printable.strip(), max_size=6),
)
def test_garbage_never_gets_a_5xx(
    clients, skill, make_token, request, body, path, method, query, if_match
):
    tally(
        request.node,
        "garbage JSON and query values at every route (hypothesis)",
        "never a 5xx; every 4xx problem+json",
    )
    token = make_token("fuzz", "admin", subject="fuzzer")
    url = path.replace("{id}", skill).replace("{q}", quote(query))
    client = clients[url.split("/")[1]]
    response = client.open(
        url,
        method=method,
        data=json.dumps(body),
        headers={
            "Authorization": f"Bearer {token}",
            "If-Match": if_match,
            "Content-Type": "application/json",
        },
    )
    response.get_data()
    assert response.status_code < 500, (url, method, response.get_data()[:300])
    if response.status_code >= 400:
        assert response.mimetype == "application/problem+json"
