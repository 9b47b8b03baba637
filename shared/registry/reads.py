"""Registry reads: one entity, one of its versions, its history, and filtered lists."""

from __future__ import annotations

from typing import Any

from shared.errors import Conflict, IntegrityViolation, InvalidQuery, LimitExceeded, NotFound
from shared.integrity import digests
from shared.registry import documents, membership
from shared.registry.versions import Document
from shared.rules import lifecycle, path_params, query_params
from shared.rules.kinds import MAX_NAME, MAX_TAG, resolve_kind
from shared.security.principal import READ_ROLES, Principal
from shared.storage import heads, ledger
from shared.storage.engine import database

MAX_PAGE = 500
MAX_CATEGORY = 64  # the category filter's length
DEFAULT_PAGE = 50
MAX_VERSION = 2**31 - 1  # versions are PostgreSQL integers


def get(principal: Principal, slug: str, raw_id: str) -> Document:
    principal.require(*READ_ROLES)
    kind = resolve_kind(slug)
    entity_id = path_params.uuid(raw_id)
    with database().transaction(principal.tenant) as conn:
        head = heads.get(conn, entity_id)
        if head is None or head.kind != kind.type:
            raise NotFound(f"no {kind.type} {entity_id}")
        entry = ledger.entry_at(conn, head.log_index)
        if entry is None:
            raise Conflict("the entity's current version is missing from the ledger")
        doc = documents.served(entry.body, entry.index, entry.leaf_hash, entry.digest)
        membership.fill(conn, [doc])
    return Document(doc, head.version)


def get_version(principal: Principal, slug: str, raw_id: str, raw_version: str) -> Document:
    principal.require(*READ_ROLES)
    kind = resolve_kind(slug)
    entity_id = path_params.uuid(raw_id)
    version = path_params.number(raw_version, "version", minimum=1, maximum=MAX_VERSION)
    entry = None
    if version is not None:
        with database().transaction(principal.tenant) as conn:
            entry = ledger.version_entry(conn, entity_id, version)
    if entry is None or entry.kind != kind.type:
        raise NotFound(f"no version {raw_version} of {kind.type} {entity_id}")
    return Document(
        documents.served(entry.body, entry.index, entry.leaf_hash, entry.digest), entry.version
    )


def list_versions(principal: Principal, slug: str, raw_id: str) -> dict[str, Any]:
    principal.require(*READ_ROLES)
    kind = resolve_kind(slug)
    entity_id = path_params.uuid(raw_id)
    with database().transaction(principal.tenant) as conn:
        entries = ledger.version_entries(conn, entity_id)
    if not entries or entries[0].kind != kind.type:
        raise NotFound(f"no {kind.type} {entity_id}")
    return {"id": entity_id, "entity_type": kind.type, "versions": [_listed(e) for e in entries]}


def _listed(entry: ledger.StoredEntry) -> dict[str, Any]:
    """One version as a history lists it, from bytes that match their digest; a 409 naming
    its index when they do not, or lack a field the listing shows (never a 500)."""
    doc = documents.verified(entry.body, entry.index, entry.leaf_hash, entry.digest)
    try:
        return {
            "version": entry.version,
            "status": doc["lifecycle"]["status"],
            "digest": digests.label(entry.digest),
            "previous_digest": doc["versioning"]["previous_digest"],
            "log_index": entry.index,
            "leaf_hash": digests.b64(entry.leaf_hash),
            "amended_by": doc["versioning"]["amended_by"],
            "amendment_reason": doc["versioning"]["amendment_reason"],
            "action": doc["audit_trail"]["action"],
            "created_at": doc["lifecycle"]["updated_at"],
        }
    except (KeyError, TypeError) as exc:
        raise IntegrityViolation(
            f"log entry {entry.index} lacks {exc}", finding="altered", log_index=entry.index
        ) from exc


# The Router refuses others; similar_to turns a skills listing into a similarity search
# (shared/registry/similar.py).
LIST_QUERY = ("status", "category", "limit", "cursor", "q", "tag", "similar_to")


def list_entities(principal: Principal, slug: str, query: dict[str, str]) -> dict[str, Any]:
    """A page of a kind's current versions, filtered, with ``total``: how many match the
    filter on every page (counted in the same snapshot as the page)."""
    principal.require(*READ_ROLES)
    kind = resolve_kind(slug)
    status, category = filters(query)
    limit = query_params.integer(query, "limit", minimum=1, maximum=MAX_PAGE, default=DEFAULT_PAGE)
    assert limit is not None
    wanted = heads.Filter(
        kind.type,
        status=status,
        category=category,
        q=search_text(query, "q", MAX_NAME),
        tag=search_text(query, "tag", MAX_TAG),
    )
    after = query_params.cursor(query)
    with database().transaction(principal.tenant, snapshot=True) as conn:
        rows = heads.page(conn, wanted, after=-1 if after is None else after, limit=limit + 1)
        total = heads.count(conn, wanted)
        more = len(rows) > limit
        rows = rows[:limit]
        items = [
            documents.served(body, head.log_index, leaf_hash, digest)
            for head, body, leaf_hash, digest in rows
        ]
        membership.fill(conn, items)
    return {
        "items": items,
        "total": total,
        "next_cursor": query_params.cursor_for(rows[-1][0].first_index) if more and rows else None,
    }


def filters(query: dict[str, str]) -> tuple[str | None, str | None]:
    """The ``status`` and ``category`` filters of a listing or a similarity search, checked
    (422 naming each bad one)."""
    errors: list[dict[str, str]] = []
    status = query.get("status") or None
    if status is not None and status not in lifecycle.STATUSES:
        errors.append({"field": "status", "message": f"must be one of {list(lifecycle.STATUSES)}"})
    category = query.get("category") or None
    if category is not None and "\x00" in category:
        errors.append({"field": "category", "message": "must not contain NUL"})
    if errors:
        raise InvalidQuery(errors)
    if category is not None and len(category) > MAX_CATEGORY:
        raise LimitExceeded(
            f"category must be at most {MAX_CATEGORY} characters",
            field="category",
            limit=MAX_CATEGORY,
        )
    return status, category


def search_text(query: dict[str, str], name: str, limit: int) -> str | None:
    """The value of the ``q`` or ``tag`` filter, if given: 1 to ``limit`` characters, no NUL
    (else 422 naming it)."""
    value = query.get(name)
    if value is None:
        return None
    if not value or len(value) > limit or "\x00" in value:
        raise LimitExceeded(
            f"{name} must be 1 to {limit} characters, none of them NUL", field=name, limit=limit
        )
    return value
