"""A tenant's tag rows as stored (``entity_tags``) and as the database derives them from each
head's logged body (``plant_body_tags``), read as the superuser: the two a test of any write
path holds equal."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

Tag = tuple[Any, ...]  # entity id, tag, kind, first index

_STORED = text(
    "SELECT CAST(entity_id AS text), tag, kind, first_index FROM entity_tags "
    "WHERE tenant_id = :t ORDER BY 1, 2"
)
_DERIVED = text(
    "SELECT CAST(h.entity_id AS text), t.tag, h.kind, h.first_index "
    "FROM entity_heads h JOIN log_entries e ON e.tenant_id = h.tenant_id AND e.idx = h.log_index "
    "CROSS JOIN LATERAL plant_body_tags(e.body) AS t(tag) WHERE h.tenant_id = :t ORDER BY 1, 2"
)


def stored(superuser: Engine, tenant: str) -> list[Tag]:
    with superuser.connect() as conn:
        return [tuple(r) for r in conn.execute(_STORED, {"t": tenant})]


def derived(superuser: Engine, tenant: str) -> list[Tag]:
    with superuser.connect() as conn:
        return [tuple(r) for r in conn.execute(_DERIVED, {"t": tenant})]
