"""A head's tags are what its logged body holds (migration 0023): ``plant_append_version``
writes them from the body it appends, so a caller with the application role calling it
directly cannot make the search index say anything else; creates, amendments and groups
through the registry write them the same way."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import text

from shared.registry import writes
from shared.registry.versions import VersionWrite, new_version
from shared.rules.kinds import resolve_kind
from shared.security.principal import Principal
from shared.storage import ledger
from shared.storage.engine import database
from tests.support import tags

_APPEND = text(
    "SELECT plant_append_version(:tenant, :kind, CAST(:entity AS uuid), :version, :body, "
    "'\\x00', '\\x00', NULL, '\\x00', 'mallory', 'draft', :name, 'technical', :key, true, "
    "now(), :expect, CAST('{}' AS uuid[]), CAST('{}' AS bigint[]))"
)


def _body(tags: Any) -> bytes:
    return json.dumps({"identity": {"name": "x"}, "metadata": {"tags": tags}}).encode()


def _direct(
    tenant: str, entity: str, version: int, body: bytes, *, kind: str = "skill", expect=None
) -> int:
    """The append function called as the application role, outside the registry's code."""
    with database().engine.begin() as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one() == "plant_app"
        return int(
            conn.execute(
                _APPEND,
                {
                    "tenant": tenant,
                    "kind": kind,
                    "entity": entity,
                    "version": version,
                    "body": body,
                    "name": f"direct {entity}",
                    "key": f"name:{entity}",
                    "expect": expect,
                },
            ).scalar_one()
        )


def test_a_direct_call_gets_the_tags_its_body_holds_and_no_others(database_url, superuser, tenant):
    """The attacker's only way to name tags to the function is the body it appends: each
    tag once, a null left out, and an amendment's body replaces them all under the head's
    own kind and first index, whatever kind the call claims."""
    entity = str(uuid.uuid4())
    first = _direct(tenant, entity, 1, _body(["real", "real", None, "other"]))
    assert tags.stored(superuser, tenant) == [
        (entity, "other", "skill", first),
        (entity, "real", "skill", first),
    ]
    _direct(tenant, entity, 2, _body(["swapped"]), kind="agent", expect=first)
    assert tags.stored(superuser, tenant) == [(entity, "swapped", "skill", first)]


def test_a_body_without_a_tag_list_or_not_json_is_appended_with_no_tags(
    database_url, superuser, tenant
):
    """As the triggers of 0011 did: a body that is not JSON (a tampered one, which the
    audit reports) is still appended, and tags that are not a list are none."""
    bodies = [b"\xff not json", b'{"metadata": {"tags": "one"}}', _body([]), b"{}"]
    for body in bodies:
        _direct(tenant, str(uuid.uuid4()), 1, body)
    assert tags.stored(superuser, tenant) == []
    with superuser.connect() as conn:
        heads = conn.execute(
            text("SELECT count(*) FROM entity_heads WHERE tenant_id = :t"), {"t": tenant}
        ).scalar_one()
    assert heads == len(bodies)


def _skill(name: str, tags: list[str]) -> dict[str, Any]:
    return {"name": name, "description": "d", "category": "technical", "tags": tags}


def test_registry_writes_alone_and_in_a_group_write_the_tags_the_database_reads_from_the_body(
    database_url, superuser, tenant
):
    """A create, an amendment and a group statement (``plant_append_versions``): the index
    holds exactly what ``plant_body_tags`` reads from each head's logged body."""
    author = Principal("alice", tenant, frozenset({"author", "reader"}))
    one = writes.create(author, "skills", _skill("one", ["a", "b"]), "r").body["identity"]["id"]
    two = writes.create(author, "skills", _skill("two", ["c"]), "r").body["identity"]["id"]
    writes.amend(author, "skills", two, {"tags": ["d", "e"], "amendment_reason": "x"}, '"v1"', "r")
    kind = resolve_kind("skills")
    group = [
        new_version(
            tenant,
            "alice",
            kind,
            VersionWrite(
                entity_id=str(uuid.uuid4()),
                head=None,
                fields=_skill(f"grouped {i}", [f"g{i}", "shared"]),
                status="draft",
                reason="created",
                action="create",
                request_id="r",
                check_unique=True,
            ),
        )
        for i in range(3)
    ]
    with database().autocommit() as conn:
        assert None not in ledger.append_versions(conn, group)
    stored = tags.stored(superuser, tenant)
    assert stored == tags.derived(superuser, tenant)
    by_entity: dict[str, list[str]] = {}
    for entity, tag, _, _ in stored:
        by_entity.setdefault(entity, []).append(tag)
    assert by_entity[one] == ["a", "b"] and by_entity[two] == ["d", "e"]
    assert sorted(sorted(tags) for e, tags in by_entity.items() if e not in (one, two)) == [
        ["g0", "shared"], ["g1", "shared"], ["g2", "shared"],
    ]  # fmt: skip
