"""Text is checked everywhere it is stored: what PostgreSQL's jsonb refuses (NUL, U+0000, in
a string or a member name) is refused at input in every field, custom_attributes included,
with a 422 naming the field's path; whatever the checks accept, jsonb accepts."""

from __future__ import annotations

import uuid

import jwt
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared.integrity import canonical
from shared.rules import inputs
from shared.rules.kinds import KINDS
from shared.storage.engine import database
from tests.support.forged_tokens import server_key, valid_claims
from tests.support.reliability_table import record, tally


@pytest.fixture
def agent_refs(create, certified_skill) -> dict[str, str]:
    skill = certified_skill(f"s {uuid.uuid4().hex[:6]}")
    role = create(
        "job-roles", name="r", description="d", required_skills=[skill], seniority_level="mid"
    )
    industry = create("industries", name="i", description="d")
    return {
        "skill_id": skill,
        "job_role_id": role["identity"]["id"],
        "industry_id": industry["identity"]["id"],
    }


def _log_size(tenant: str) -> int:
    with database().transaction(tenant) as conn:
        return int(
            conn.execute(text("SELECT coalesce(max(idx) + 1, 0) FROM log_entries")).scalar_one()
        )


def _refused(response, field: str) -> None:
    assert response.status_code == 422, (response.status_code, response.json)
    assert response.mimetype == "application/problem+json"
    named = [(v["rule"], v["field"]) for v in response.json["violations"]]
    assert named == [("INPUT-02", field)], named


NUL_ATTRIBUTES = [
    ({"x": "\u0000"}, "custom_attributes.x"),
    ({"\u0000": 1}, 'custom_attributes["\\u0000"]'),
    ({"a": [1, {"b": "ok\u0000"}]}, "custom_attributes.a[1].b"),
    ({"a": {"k\u0000": None}}, 'custom_attributes.a["k\\u0000"]'),
    ({"a b": ["\u0000"]}, 'custom_attributes["a b"][0]'),
]


@pytest.mark.parametrize(("attributes", "field"), NUL_ATTRIBUTES)
def test_a_nul_anywhere_in_custom_attributes_is_422_naming_its_path(
    request, registry_client, author, tenant, agent_refs, attributes, field
):
    before = _log_size(tenant)
    response = registry_client.post(
        "/registry/agents",
        json={"name": "a", **agent_refs, "custom_attributes": attributes},
        headers=author,
    )
    _refused(response, field)
    assert _log_size(tenant) == before
    record(
        request.node,
        "NUL (U+0000) in custom_attributes, keys and values, nested",
        1,
        "422 problem+json naming the path (e.g. custom_attributes.x), nothing written",
    )


def test_an_amendment_with_a_nul_attribute_is_refused_too(registry_client, author, tenant, skill):
    skill_id = skill("Rust")
    before = _log_size(tenant)
    response = registry_client.patch(
        f"/registry/skills/{skill_id}",
        json={"custom_attributes": {"x": ["\u0000"]}, "amendment_reason": "r"},
        headers={**author, "If-Match": '"v1"'},
    )
    _refused(response, "custom_attributes.x[0]")
    assert _log_size(tenant) == before


def test_nul_in_every_other_text_field_is_422(registry_client, author, tenant, skill):
    skill_id = skill("Go")
    for body, field in (
        ({"name": "a\u0000", "description": "d", "category": "technical"}, "name"),
        ({"name": "a", "description": "d", "category": "technical", "tags": ["\u0000"]}, "tags[0]"),
        ({"name": "a", "description": "d", "category": "tech\u0000nical"}, "category"),
    ):
        response = registry_client.post("/registry/skills", json=body, headers=author)
        assert response.status_code == 422, response.json
        assert field in {v["field"] for v in response.json["violations"]}
    status = registry_client.post(
        f"/registry/skills/{skill_id}/status",
        json={"status": "pending_certification", "reason": "\u0000"},
        headers=author,
    )
    assert status.status_code == 422
    assert [v["field"] for v in status.json["violations"]] == ["reason"]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"x": "\\ud800"}',  # an unpaired surrogate, escaped
        b'{"x": "\\udc00 and more"}',
        b'{"\\ud83d": 1}',
        b'{"x": NaN}',
        b'{"x": 1e400}',  # past a double: would be infinity
    ],
)
def test_values_jsonb_or_i_json_refuse_are_400_before_any_field(
    registry_client, author, tenant, raw
):
    body = b'{"name": "a", "description": "d", "category": "technical", "custom_attributes": '
    before = _log_size(tenant)
    response = registry_client.post(
        "/registry/skills",
        data=body + raw + b"}",
        headers={**author, "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.json
    assert response.mimetype == "application/problem+json"
    assert _log_size(tenant) == before


def test_an_integer_past_i_json_is_422_naming_where_it_sits(registry_client, author, tenant):
    body = b'{"name": "a", "description": "d", "category": "technical", "custom_attributes": '
    before = _log_size(tenant)
    response = registry_client.post(
        "/registry/skills",
        data=body + b'{"x": 9007199254740992}}',
        headers={**author, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.json
    assert response.mimetype == "application/problem+json"
    assert "custom_attributes.x" in response.json["detail"], response.json
    assert _log_size(tenant) == before


def test_a_token_subject_with_a_nul_is_401(registry_client, tenant):
    token = jwt.encode(
        valid_claims(tenant, sub="mallory\u0000", roles=["author"]), server_key(), "EdDSA"
    )
    response = registry_client.post(
        "/registry/skills",
        json={"name": "a", "description": "d", "category": "technical"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-canonical.MAX_SAFE_INTEGER, canonical.MAX_SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=["Cs"]))
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _holds_nul(value) -> bool:
    if isinstance(value, str):
        return "\u0000" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    return isinstance(value, list) and any(_holds_nul(v) for v in value)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(st.text(max_size=8), _values, max_size=6))
def test_whatever_the_input_checks_accept_jsonb_accepts(request, database_url, value):
    """Against the real server: the canonical bytes of every custom_attributes value the
    checks accept are accepted by ``::jsonb``; the checks refuse a value for its text
    exactly when it holds a NUL."""
    body = {"name": "a", "description": "d", "category": "technical", "custom_attributes": value}
    _, _, problems = inputs.check_write(KINDS["skills"], body, current=None)
    assume(not any(p.rule == "INPUT-03" for p in problems))  # past a limit: checked first
    with database().engine.connect() as conn:
        try:
            conn.execute(
                text("SELECT convert_from(:b, 'UTF8')::jsonb"), {"b": canonical.dumps(value)}
            )
            stored = True
        except DBAPIError:
            stored = False
        conn.rollback()
    refused = [p for p in problems if p.rule == "INPUT-02"]
    assert stored == (not refused) == (not _holds_nul(value)), (value, problems)
    tally(
        request.node,
        "values jsonb refuses in custom_attributes (hypothesis, real PostgreSQL)",
        "every value the checks accept is stored by jsonb; every one refused holds a NUL",
    )
