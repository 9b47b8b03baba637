"""Registry writes: create, amend, change status and assign a team.

Every write appends a complete new version (never rewrites one) inside one tenant-scoped
transaction: validate input, lock and check what it references, check uniqueness, append to
the ledger, move the head. Any failure rolls everything back, so nothing is half-written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from shared.errors import Conflict, NotFound, PreconditionFailed, PreconditionRequired
from shared.integrity import canonical
from shared.registry import documents
from shared.registry.ids import new_entity_id
from shared.registry.versions import (
    Document,
    VersionWrite,
    append_version,
    invalid,
    pinned_references,
    references,
    usable_fields,
    write_transaction,
)
from shared.rules import inputs, lifecycle, path_params
from shared.rules.catalogue import Violation
from shared.rules.kinds import MAX_REASON, Kind, resolve_kind
from shared.rules.relations import Ref, check_relations, referenced_ids
from shared.security.principal import Principal
from shared.storage import heads, ledger
from shared.storage.engine import database, retry_transient


def parse_if_match(value: str | None, *, required: bool) -> int | None:
    """``If-Match: "vN"`` -> N. Missing and required: 428."""
    if value is None or not value.strip():
        if required:
            raise PreconditionRequired('If-Match: "vN" is required to amend an entity')
        return None
    tag = value.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    tag = tag.strip('"')
    if not tag.startswith("v") or not (tag[1:].isascii() and tag[1:].isdigit()) or len(tag) > 12:
        raise PreconditionFailed('If-Match must be an ETag of the form "vN"')
    return int(tag[1:])


@retry_transient()
def create(principal: Principal, slug: str, body: Any, request_id: str) -> Document:
    principal.require("author")
    kind = resolve_kind(slug)
    fields, _, problems = inputs.check_write(kind, body, current=None)
    if any(p.field == "" for p in problems):
        raise invalid(problems)
    entity_id = str(new_entity_id())
    usable = usable_fields(kind, fields, problems)
    refs: dict[str, Ref] = {}
    pins: dict[str, int] = {}
    if referenced_ids(kind, usable):
        with database().transaction(principal.tenant) as conn:
            refs, pins = pinned_references(conn, kind, usable)
    problems += check_relations(kind, usable, None, refs)
    if problems:
        raise invalid(problems)
    return append_version(
        None,
        principal,
        kind,
        VersionWrite(
            entity_id=entity_id,
            head=None,
            fields=fields,
            status="draft",
            reason="created",
            action="create",
            request_id=request_id,
            check_unique=True,
            pins=pins,
        ),
    )


@dataclass(frozen=True)
class Current:
    head: heads.Head
    entry: ledger.StoredEntry
    doc: dict[str, Any]
    fields: dict[str, Any]


def lock_current(
    conn: Connection, kind: Kind, entity_id: str, expected: int | None, *, lock: bool = True
) -> Current:
    """Lock an entity's head (unless ``lock`` is false: a one-trip write re-checks it),
    check the caller's expected version, load its current version."""
    head = heads.get(conn, entity_id, lock=lock)
    if head is None or head.kind != kind.type:
        raise NotFound(f"no {kind.type} {entity_id}")
    if expected is not None and head.version != expected:
        raise PreconditionFailed(
            f"version v{expected} is stale; the current version is v{head.version}",
            current_etag=f'"v{head.version}"',
        )
    entry = ledger.entry_at(conn, head.log_index)
    if entry is None:  # the ledger lost the row the head points at: tampering
        raise Conflict("the entity's current version is missing from the ledger")
    doc = canonical.read(entry.body)
    return Current(head, entry, doc, documents.client_fields(kind, doc))


@retry_transient()
def amend(
    principal: Principal,
    slug: str,
    raw_id: str,
    body: Any,
    if_match: str | None,
    request_id: str,
) -> Document:
    principal.require("author")
    kind = resolve_kind(slug)
    entity_id = path_params.uuid(raw_id)
    expected = parse_if_match(if_match, required=True)
    with database().transaction(principal.tenant) as conn:
        cur = lock_current(conn, kind, entity_id, expected, lock=False)
        if cur.head.status == "deprecated":
            raise Conflict("a deprecated entity cannot be amended")
        fields, reason, problems = inputs.check_write(kind, body, current=cur.fields)
        if any(p.field == "" for p in problems):
            raise invalid(problems)
        if not problems and fields == cur.fields:
            # A version identical to the current one records nothing, yet would take a
            # certified entity back to pending_certification.
            raise invalid([Violation("INPUT-06", "", "the amendment changes no field")])
        usable = usable_fields(kind, fields, problems)
        refs, pins = pinned_references(conn, kind, usable)
    problems += check_relations(kind, usable, cur.fields, refs, self_id=entity_id)
    if problems:
        raise invalid(problems)
    return append_version(
        None,
        principal,
        kind,
        VersionWrite(
            entity_id=entity_id,
            head=cur.head,
            fields=fields,
            status=lifecycle.after_amendment(cur.head.status),
            reason=reason or "",
            action="amend",
            request_id=request_id,
            created_at=cur.doc["lifecycle"]["created_at"],
            previous_digest=cur.entry.digest,
            check_unique=True,
            pins=pins,
        ),
    )


@retry_transient()
def change_status(
    principal: Principal,
    slug: str,
    raw_id: str,
    body: Any,
    if_match: str | None,
    request_id: str,
) -> Document:
    principal.require("author")
    kind = resolve_kind(slug)
    entity_id = path_params.uuid(raw_id)
    expected = parse_if_match(if_match, required=False)
    problems = _status_body(body)
    if problems:
        raise invalid(problems)
    target, reason = body["status"], body["reason"]
    with write_transaction(principal) as conn:
        cur = lock_current(conn, kind, entity_id, expected)
        if not lifecycle.allowed(cur.head.status, target):
            raise Conflict(f"status cannot change from {cur.head.status} to {target}")
        if target not in ("deprecated", "suspended"):
            # Leaving a dead end must not revive references to dead entities.
            found = check_relations(
                kind, cur.fields, cur.fields, references(conn, kind, cur.fields), self_id=entity_id
            )
            if found:
                raise invalid(found)
        return append_version(
            conn,
            principal,
            kind,
            VersionWrite(
                entity_id=entity_id,
                head=cur.head,
                fields=cur.fields,
                status=target,
                reason=reason,
                action="status",
                request_id=request_id,
                certification=cur.doc["constitutional_alignment"].get("certification"),
                created_at=cur.doc["lifecycle"]["created_at"],
                previous_digest=cur.entry.digest,
                check_unique=target != "deprecated" and cur.head.status == "deprecated",
            ),
        )


def _status_body(body: Any) -> list[Violation]:
    if not isinstance(body, dict):
        return [Violation("INPUT-02", "", "the body must be a JSON object")]
    problems = [
        Violation("INPUT-04", name, "is not a field of this request")
        for name in body
        if name not in ("status", "reason")
    ]
    status = body.get("status")
    if status is None:
        problems.append(Violation("INPUT-01", "status", "is required"))
    elif status not in lifecycle.STATUSES:
        problems.append(
            Violation("INPUT-02", "status", f"must be one of {list(lifecycle.STATUSES)}")
        )
    elif status == "certified":
        problems.append(
            Violation("LIFECYCLE-01", "status", "only certification can set 'certified'")
        )
    problems += inputs.check_text("reason", body.get("reason"), MAX_REASON, True)
    return problems


def assign_team(
    principal: Principal, raw_id: str, body: Any, if_match: str | None, request_id: str
) -> Document:
    """Put an agent in a team (or take it out with ``team_id: null``): a new agent version."""
    principal.require("author")
    if (
        not isinstance(body, dict)
        or set(body) - {"team_id", "amendment_reason"}
        or ("team_id" not in body)
    ):
        raise invalid([Violation("INPUT-01", "team_id", 'send exactly {"team_id": ...}')])
    patch = {
        "team_id": body["team_id"],
        "amendment_reason": body.get("amendment_reason") or "team assignment",
    }
    if if_match is None:
        with database().transaction(principal.tenant) as conn:
            head = heads.get(conn, path_params.uuid(raw_id))
        if head is None or head.kind != "agent":
            raise NotFound("no such agent")
        if_match = f'"v{head.version}"'
    return amend(principal, "agents", raw_id, patch, if_match, request_id)
