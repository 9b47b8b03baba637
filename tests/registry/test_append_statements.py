"""``plant_append_version`` (migration 0033: the tenant set and the pins skipped without the
executor) refuses and writes as before: a taken key names the holder of its first reading
before that of its second, a deprecated head or the entity itself holds none, a version
logged twice is the entry's refusal (the 412 of ``_constraint_races``), and a create's rows
are the ones its arguments name, under the tenant it names. Called as the application role,
as any caller of the function would."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from shared.storage.engine import database, sqlstate

_APPEND = text(
    "SELECT plant_append_version(:tenant, 'skill', CAST(:entity AS uuid), :version, :body, "
    "'\\x01', '\\x02', NULL, '\\x03', 'actor', :status, :name, 'technical', :key, true, "
    "CAST('2026-12-07T00:00:00Z' AS timestamptz), :expect, CAST('{}' AS uuid[]), "
    "CAST('{}' AS bigint[]))"
)
_SEP = "\u2063"  # between a key's two readings (plant_key_reading)


def _append(tenant: str, entity: str, key: str, *, version: int = 1, **over: object) -> int:
    values = {
        "tenant": tenant,
        "entity": entity,
        "version": version,
        "body": b'{"metadata": {"tags": ["t1", "t2"]}}',
        "status": "draft",
        "name": f"name {entity}",
        "key": key,
        "expect": None,
        **over,
    }
    with database().engine.begin() as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one() == "plant_app"
        return int(conn.execute(_APPEND, values).scalar_one())


def _refused_by(tenant: str, key: str) -> str:
    """The holder a create of ``key`` is refused for (SQLSTATE PL409, holder as message)."""
    with pytest.raises(DBAPIError) as caught:
        _append(tenant, str(uuid.uuid4()), key)
    assert sqlstate(caught.value) == "PL409"
    return str(caught.value.orig.args[0]["M"])


def test_a_taken_key_names_the_holder_of_its_first_reading_before_its_second(database_url, tenant):
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    _append(tenant, first, f"alpha{_SEP}one")
    _append(tenant, second, f"beta{_SEP}two")
    assert _refused_by(tenant, f"alpha{_SEP}two") == first  # both readings held
    assert _refused_by(tenant, f"gamma{_SEP}two") == second  # the second only
    assert _refused_by(tenant, f"alpha{_SEP}three") == first  # the first only
    assert _refused_by(tenant, "beta") == second  # a key of one reading
    _append(tenant, str(uuid.uuid4()), f"gamma{_SEP}three")  # neither: appended


def test_a_deprecated_holder_and_the_entity_itself_hold_no_key(database_url, tenant):
    entity = str(uuid.uuid4())
    at = _append(tenant, entity, f"delta{_SEP}four")
    # The entity's own next version keeps its key (the probe leaves the entity out).
    moved = _append(tenant, entity, f"delta{_SEP}five", version=2, expect=at)
    _append(tenant, entity, f"delta{_SEP}five", version=3, expect=moved, status="deprecated")
    _append(tenant, str(uuid.uuid4()), f"delta{_SEP}five")  # a deprecated holder holds nothing


def test_a_version_logged_twice_is_refused_by_the_entry_first(database_url, tenant):
    """Version 1 of an entity that has one: the entry's unique index refuses it (the 412 of
    ``_constraint_races``), before the head's primary key could."""
    entity = str(uuid.uuid4())
    _append(tenant, entity, f"eps{_SEP}six")
    with pytest.raises(IntegrityError) as caught:
        _append(tenant, entity, f"zeta{_SEP}seven")
    assert sqlstate(caught.value) == "23505"
    assert caught.value.orig.args[0]["n"] == "log_entries_one_version"


def test_a_create_writes_its_entry_head_and_tags_and_moves_the_counter(
    database_url, superuser, tenant
):
    entity = str(uuid.uuid4())
    before = _append(tenant, str(uuid.uuid4()), f"eta{_SEP}eight")
    at = _append(tenant, entity, f"theta{_SEP}nine")
    assert at == before + 1
    with superuser.connect() as conn:
        entry = conn.execute(
            text(
                "SELECT idx, entry_type, kind, version, body, digest, leaf_hash, prev_digest, "
                "field_hashes, actor FROM log_entries WHERE tenant_id = :t AND entity_id = "
                "CAST(:e AS uuid)"
            ),
            {"t": tenant, "e": entity},
        ).one()
        head = conn.execute(
            text(
                "SELECT kind, version, status, name, category, unique_key, first_index, "
                "log_index, created_at = updated_at FROM entity_heads WHERE tenant_id = :t "
                "AND entity_id = CAST(:e AS uuid)"
            ),
            {"t": tenant, "e": entity},
        ).one()
        tag_rows = conn.execute(
            text(
                "SELECT tag, kind, first_index FROM entity_tags WHERE tenant_id = :t "
                "AND entity_id = CAST(:e AS uuid) ORDER BY tag"
            ),
            {"t": tenant, "e": entity},
        ).all()
        size = conn.execute(
            text("SELECT size FROM log_heads WHERE tenant_id = :t"), {"t": tenant}
        ).scalar_one()
    body = b'{"metadata": {"tags": ["t1", "t2"]}}'
    assert tuple(entry) == (
        at, "version", "skill", 1, body, b"\x01", b"\x02", None, b"\x03", "actor",
    )  # fmt: skip
    assert tuple(head) == (
        "skill", 1, "draft", f"name {entity}", "technical", f"theta{_SEP}nine", at, at, True,
    )  # fmt: skip
    assert [tuple(r) for r in tag_rows] == [("t1", "skill", at), ("t2", "skill", at)]
    assert size == at + 1
