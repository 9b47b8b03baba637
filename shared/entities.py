"""Registry operations: create, amend, change status, assign a team, and read entities.

Every write appends a complete new version (never rewrites one) inside one tenant-scoped
transaction: validate input, lock and check what it references, check uniqueness, append to
the ledger, move the head. Any failure rolls everything back, so nothing is half-written.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from shared import (
    collector,
    dependents,
    documents,
    lifecycle,
    membership,
    names,
    path_params,
    query_params,
)
from shared.admission import Slots
from shared.auth import READ_ROLES, Principal
from shared.config import settings
from shared.documents import Change
from shared.errors import (
    Conflict,
    InvalidQuery,
    LimitExceeded,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    PreconditionRequired,
    ValidationFailed,
)
from shared.ids import new_entity_id
from shared.integrity import canonical, digests
from shared.kinds import (
    KINDS,
    MAX_NAME,
    MAX_REASON,
    MAX_TAG,
    TYPE_TO_SLUG,
    Kind,
    kind_for,
)
from shared.rules import inputs
from shared.rules.catalogue import Violation, rules_for
from shared.rules.relations import Ref, check_relations, referenced_ids, unique_key
from shared.storage import heads, ledger
from shared.storage.engine import database, retry_transient, sqlstate
from shared.storage.group import GroupCommits

MAX_PAGE = 500
MAX_CATEGORY = 64  # the category filter's length
DEFAULT_PAGE = 50
MAX_VERSION = 2**31 - 1  # versions are PostgreSQL integers


@dataclass(frozen=True)
class Document:
    """A served version and its ETag version number."""

    body: dict[str, Any]
    version: int
    cascade: tuple[dict[str, Any], ...] = ()  # the entities the write moved out of certified


def resolve_kind(slug: str) -> Kind:
    kind = kind_for(slug)
    if kind is None:
        raise NotFound(f"unknown kind {slug!r}")
    return kind


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


@contextmanager
def write_transaction(principal: Principal) -> Iterator[Connection]:
    """A write transaction for the caller's tenant; constraint races become 409/412."""
    with _constraint_races(), database().transaction(principal.tenant) as conn:
        yield conn


@contextmanager
def one_trip_write() -> Iterator[Connection]:
    """An autocommit connection for one ``ledger.append_version`` statement (its own
    transaction, one round trip); constraint races become 409/412 as in a transaction."""
    with _constraint_races(), database().autocommit() as conn:
        yield conn


@contextmanager
def _constraint_races() -> Iterator[None]:
    try:
        yield
    except IntegrityError as exc:
        if sqlstate(exc) == "23505":
            orig = getattr(exc, "orig", None)
            detail = orig.args[0] if orig is not None and orig.args else {}
            constraint = detail.get("n", "") if isinstance(detail, dict) else ""
            if constraint == "log_entries_one_version":
                raise PreconditionFailed("the entity changed meanwhile; re-read it") from exc
            raise Conflict("an entity with the same unique key is already live") from exc
        raise


def references(conn: Connection, kind: Kind, fields: dict[str, Any]) -> dict[str, Ref]:
    return pinned_references(conn, kind, fields)[0]


def pinned_references(
    conn: Connection, kind: Kind, fields: dict[str, Any], ids: set[str] | None = None
) -> tuple[dict[str, Ref], dict[str, int]]:
    """The entities ``fields`` (or ``ids``) reference, and the log index of the version that
    was read of each (the pins a one-trip write re-checks before it appends)."""
    wanted = sorted(referenced_ids(kind, fields) if ids is None else ids)
    found = heads.referenced(conn, wanted) if wanted else []
    out, pins = {}, {}
    for head, body in found:
        ref_kind = kind_for_type(head.kind)
        doc = canonical.read(body)
        out[head.entity_id] = Ref(
            head.entity_id, head.kind, head.status, documents.client_fields(ref_kind, doc)
        )
        pins[head.entity_id] = head.log_index
    return out, pins


def kind_for_type(entity_type: str) -> Kind:
    return KINDS[TYPE_TO_SLUG[entity_type]]


UNIQUE_TAKEN = "PL409"  # raised by plant_append_version with the holder's id as message


def _unique_rule(kind: Kind) -> tuple[str, str]:
    """The uniqueness rule of a kind and the field its violations name."""
    return ("L1-SKILL-02", "name") if kind.type == "skill" else ("L1-AGENT-03", "skill_id")


@contextmanager
def _unique_taken_is_409(kind: Kind) -> Iterator[None]:
    """The write functions refuse a taken unique key with SQLSTATE ``UNIQUE_TAKEN`` and the
    holder's id: a 409 naming the rule and the holder."""
    try:
        yield
    except DBAPIError as exc:
        if sqlstate(exc) != UNIQUE_TAKEN:
            raise
        holder, name = _message(exc), _message(exc, "D")
        rule, field = _unique_rule(kind)
        raise Conflict(
            f"a live {kind.type} with the same unique key already exists: {holder} ({name!r})",
            violations=[Violation(rule, field, f"already taken by {holder} ({name!r})").as_dict()],
            existing_id=holder,
            existing_name=name,
        ) from exc


def _usable(kind: Kind, fields: dict[str, Any], problems: list[Violation]) -> dict[str, Any]:
    """The fields relationship rules can still check when some input is malformed: a field
    (or list item) that already has an input violation is left out, so every other rule
    still reports in the same response."""
    bad = {p.field for p in problems}
    usable = dict(fields)
    for field in kind.fields:
        value = usable.get(field.name)
        if field.name in bad:
            usable[field.name] = None
        elif isinstance(value, list) and field.references:
            usable[field.name] = [
                v for i, v in enumerate(value) if f"{field.name}[{i}]" not in bad and v
            ]
    return usable


def _passed(kind: Kind) -> list[dict[str, Any]]:
    return [
        {"rule": r.id, "result": "pass"}
        for r in rules_for(kind.type, "write")
        if not r.id.startswith("INPUT")
    ]


def new_version(
    tenant: str,
    actor: str,
    kind: Kind,
    *,
    entity_id: str,
    head: heads.Head | None,
    fields: dict[str, Any],
    status: str,
    reason: str,
    action: str,
    request_id: str,
    certification: dict[str, Any] | None = None,
    created_at: str | None = None,
    previous_digest: bytes | None = None,
    check_unique: bool = False,
    pins: dict[str, int] | None = None,
) -> ledger.NewVersion:
    """Version (head.version + 1) of an entity, encoded, with the head move it makes."""
    now = documents.now_text()
    version = 1 if head is None else head.version + 1
    change = Change(
        tenant=tenant,
        entity_id=entity_id,
        version=version,
        status=status,
        created_at=created_at or now,
        updated_at=now,
        previous_digest=digests.label(previous_digest) if previous_digest else None,
        amendment_reason=reason,
        actor=actor,
        request_id=request_id,
        action=action,
        rule_results=_passed(kind),
        certification=certification,
    )
    encoded = documents.encode(documents.build(kind, fields, change))
    move = ledger.HeadMove(
        status=status,
        name=fields["name"],
        category=fields.get("category"),
        unique_key=unique_key(kind, fields),
        check_unique=check_unique,
        at=now,
        expect_index=None if head is None else head.log_index,
        pins=pins or {},
    )
    return ledger.NewVersion(
        tenant=tenant,
        kind=kind.type,
        entity_id=entity_id,
        version=version,
        encoded=encoded,
        prev_digest=previous_digest,
        actor=actor,
        move=move,
    )


def append_version(
    conn: Connection | None,
    principal: Principal,
    kind: Kind,
    *,
    entity_id: str,
    head: heads.Head | None,
    fields: dict[str, Any],
    status: str,
    reason: str,
    action: str,
    request_id: str,
    certification: dict[str, Any] | None = None,
    created_at: str | None = None,
    previous_digest: bytes | None = None,
    check_unique: bool = False,
    pins: dict[str, int] | None = None,
) -> Document:
    """Append version (head.version + 1) of an entity and move its head to it, in one
    statement: inside the caller's transaction (``conn``), or, with ``conn`` None, as its own
    transaction after reading ``head`` and the references (``pins``) without locks, grouped
    with the writes of other threads that run at the same time (``shared.storage.group``).

    A version that takes a certified entity out of ``certified`` is written with its
    cascade (``_append_leaving``), in ``conn`` or in a transaction of its own."""
    new = new_version(
        principal.tenant,
        principal.subject,
        kind,
        entity_id=entity_id,
        head=head,
        fields=fields,
        status=status,
        reason=reason,
        action=action,
        request_id=request_id,
        certification=certification,
        created_at=created_at,
        previous_digest=previous_digest,
        check_unique=check_unique,
        pins=pins,
    )
    encoded = new.encoded
    with _unique_taken_is_409(kind):
        if head is not None and head.status == "certified" and status != "certified":
            if conn is None:
                with write_transaction(principal) as own:
                    return _append_leaving(own, new, request_id)
            return _append_leaving(conn, new, request_id)
        index = _appends.submit(new) if conn is None else ledger.append_version(conn, new).index
    body = documents.served(encoded.body, index, encoded.leaf_hash, encoded.digest)
    return Document(body, new.version)


def _append_leaving(conn: Connection, new: ledger.NewVersion, request_id: str) -> Document:
    """Append ``new``, which takes its entity out of ``certified``, and a version of every
    certified entity that depends on it (``shared.dependents``), in ``conn``'s transaction.

    Locks: the entity's head, then the dependents' heads in id order, looked up again until
    a lookup finds none unlocked (a certification that read one of them before it was
    locked has committed by then and is seen; one after waits for this transaction and
    then finds its reference uncertified). The counter is taken last, by the first append.
    """
    ledger.lock_heads(conn, [new.entity_id])
    locked = {new.entity_id}
    joins = _team_joined(new)
    while True:
        moved = dependents.certified_dependents(conn, new.entity_id, new.move.status, joins)
        fresh = {m.live.head.entity_id for m in moved} - locked
        if not fresh:
            break
        ledger.lock_heads(conn, fresh)
        locked |= fresh
    versions = {new.entity_id: (new.kind, new.version, new.move.status)}
    for m in moved:
        versions[m.live.head.entity_id] = (m.live.head.kind, m.live.head.version + 1, m.status)
    items = [new] + [_cascade_version(new, m, versions, request_id) for m in moved]
    indices = ledger.append_all(conn, items)
    encoded = new.encoded
    return Document(
        documents.served(encoded.body, indices[0], encoded.leaf_hash, encoded.digest),
        new.version,
        tuple(
            {
                "kind": TYPE_TO_SLUG[item.kind],
                "id": item.entity_id,
                "version": item.version,
                "status": item.move.status,
                "log_index": index,
            }
            for item, index in zip(items[1:], indices[1:], strict=True)
        ),
    )


def _team_joined(new: ledger.NewVersion) -> tuple[str, ...]:
    """The team an agent's new version names (its team uses it from this write on)."""
    if new.kind != "agent":
        return ()
    team = canonical.read(new.encoded.body)["relationships"].get("team_id")
    return (team,) if isinstance(team, str) else ()


def _cascade_version(
    origin: ledger.NewVersion,
    moved: dependents.Moved,
    versions: dict[str, tuple[str, int, str]],
    request_id: str,
) -> ledger.NewVersion:
    """The system's version of a dependent: its content and certificate record as they
    were, its new status, and a reason naming what it depends on that moved."""
    head, doc = moved.live.head, moved.live.doc
    kind = kind_for_type(head.kind)
    return new_version(
        origin.tenant,
        dependents.SYSTEM,
        kind,
        entity_id=head.entity_id,
        head=head,
        fields=documents.client_fields(kind, doc),
        status=moved.status,
        reason=dependents.reason(moved, versions),
        action="cascade",
        request_id=request_id,
        certification=doc["constitutional_alignment"].get("certification"),
        created_at=doc["lifecycle"]["created_at"],
        previous_digest=moved.live.digest,
    )


def _append_alone(new: ledger.NewVersion) -> int:
    with one_trip_write() as conn:
        return ledger.append_version(conn, new).index


def _append_together(group: Sequence[ledger.NewVersion]) -> list[int | None]:
    with database().autocommit() as conn:
        return ledger.append_versions(conn, group)


# Creates and amendments of one tenant that run at the same time in this process share
# statements (a queue per tenant: a group never waits for another tenant's counter); two may
# be on their way at once, so one group's round trip overlaps the other's execution (the
# second waits on the server for the tenant's counter, which the first holds until it commits).
_appends = GroupCommits(
    lambda new: new.tenant,
    _append_alone,
    _append_together,
    limit=ledger.MAX_GROUP,
    in_flight=2,
)


@retry_transient()
def create(principal: Principal, slug: str, body: Any, request_id: str) -> Document:
    principal.require("author")
    kind = resolve_kind(slug)
    fields, _, problems = inputs.check_write(kind, body, current=None)
    if any(p.field == "" for p in problems):
        raise _invalid(problems)
    entity_id = str(new_entity_id())
    usable = _usable(kind, fields, problems)
    refs: dict[str, Ref] = {}
    pins: dict[str, int] = {}
    if referenced_ids(kind, usable):
        with database().transaction(principal.tenant) as conn:
            refs, pins = pinned_references(conn, kind, usable)
    problems += check_relations(kind, usable, None, refs)
    if problems:
        raise _invalid(problems)
    return append_version(
        None,
        principal,
        kind,
        entity_id=entity_id,
        head=None,
        fields=fields,
        status="draft",
        reason="created",
        action="create",
        request_id=request_id,
        check_unique=True,
        pins=pins,
    )


MAX_BATCH = 10_000
_batches = Slots(lambda: settings().max_batches, "batch")


@contextmanager
def batch_admitted(principal: Principal) -> Iterator[None]:
    """Hold one of the process's batch slots (``shared.admission``) for the caller's tenant,
    or raise ServiceUnavailable (503) at once. Taken before the request's body is read, so a
    refused batch costs no parsing and never waits holding a server thread."""
    principal.require("author")
    with _batches.held(principal.tenant):
        yield


def create_batch(
    principal: Principal, slug: str, bodies: Any, request_id: str
) -> list[dict[str, Any]]:
    """Create many entities of one kind at once: all or nothing, in one statement.

    Every item is checked as ``create`` checks one (violations name ``items[i].field``, all
    reported together), plus uniqueness inside the batch; then version 1 of each is appended
    with one move of the log counter. Returns, per item in order, its id, version, log index
    and digest (the full documents are one GET away). The HTTP route runs it inside
    ``batch_admitted``.
    """
    with collector.paused():  # its items live until it ends: nothing for the collector
        return _create_batch(principal, slug, bodies, request_id)


@retry_transient()
def _create_batch(
    principal: Principal, slug: str, bodies: Any, request_id: str
) -> list[dict[str, Any]]:
    principal.require("author")
    kind = resolve_kind(slug)
    if not isinstance(bodies, list) or not bodies:
        raise _invalid([Violation("INPUT-01", "items", "must be a non-empty list")])
    if len(bodies) > MAX_BATCH:
        raise PayloadTooLarge(f"a batch holds at most {MAX_BATCH} items", limit=MAX_BATCH)
    checked = [inputs.check_write(kind, body, current=None) for body in bodies]
    usable = [_usable(kind, fields, problems) for fields, _, problems in checked]
    wanted: set[str] = set()
    for fields in usable:
        wanted |= referenced_ids(kind, fields)
    refs: dict[str, Ref] = {}
    pins: dict[str, int] = {}
    if wanted:
        with database().transaction(principal.tenant) as conn:
            refs, pins = pinned_references(conn, kind, {}, ids=wanted)
    problems: list[Violation] = []
    seen: dict[tuple[int, str], int] = {}  # (place, reading) -> the item that holds it
    for i, ((fields, _, own), use) in enumerate(zip(checked, usable, strict=True)):
        found = own + (
            [] if any(p.field == "" for p in own) else check_relations(kind, use, None, refs)
        )
        key = None if found else unique_key(kind, fields)
        held = [] if key is None else list(enumerate(names.readings(key)))
        first = next((seen[r] for r in held if r in seen), None)
        if first is not None:
            found.append(_duplicate_in_batch(kind, first))
        else:
            seen.update(dict.fromkeys(held, i))
        problems += [Violation(p.rule, _item_field(i, p.field), p.message) for p in found]
    if problems:
        raise _invalid(problems)
    now = documents.now_text()
    change = Change(
        tenant=principal.tenant,
        entity_id="",
        version=1,
        status="draft",
        created_at=now,
        updated_at=now,
        previous_digest=None,
        amendment_reason="created",
        actor=principal.subject,
        request_id=request_id,
        action="create",
        rule_results=_passed(kind),
    )
    items: list[ledger.NewEntity] = []

    def encoded() -> Iterator[ledger.NewEntity]:  # on the ledger's helper thread, as needed
        for fields, _, _ in checked:
            entity_id = new_entity_id()
            item = ledger.NewEntity(
                entity_id,
                documents.encode(documents.build(kind, fields, change, str(entity_id))),
                fields["name"],
                fields.get("category"),
                unique_key(kind, fields),
            )
            items.append(item)
            yield item

    with _unique_taken_is_409(kind), write_transaction(principal) as conn:
        first = ledger.create_versions(
            conn,
            principal.tenant,
            kind=kind.type,
            count=len(checked),
            items=encoded(),
            actor=principal.subject,
            at=now,
            pins=pins,
        )
    return [
        {
            "id": str(item.entity_id),
            "version": 1,
            "log_index": first + i,
            "digest": digests.label(item.encoded.digest),
        }
        for i, item in enumerate(items)
    ]


def batch_items(body: Any) -> Any:
    """The list a batch request carries: ``{"items": [...]}``."""
    if not isinstance(body, dict) or set(body) != {"items"}:
        raise _invalid([Violation("INPUT-01", "items", 'send exactly {"items": [...]}')])
    return body["items"]


def _item_field(index: int, field: str) -> str:
    return f"items[{index}]" + (f".{field}" if field else "")


def _duplicate_in_batch(kind: Kind, first: int) -> Violation:
    rule, field = _unique_rule(kind)
    return Violation(rule, field, f"same unique key as items[{first}]")


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
            raise _invalid(problems)
        if not problems and fields == cur.fields:
            # A version identical to the current one records nothing, yet would take a
            # certified entity back to pending_certification.
            raise _invalid([Violation("INPUT-06", "", "the amendment changes no field")])
        usable = _usable(kind, fields, problems)
        refs, pins = pinned_references(conn, kind, usable)
    problems += check_relations(kind, usable, cur.fields, refs, self_id=entity_id)
    if problems:
        raise _invalid(problems)
    return append_version(
        None,
        principal,
        kind,
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
        raise _invalid(problems)
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
                raise _invalid(found)
        return append_version(
            conn,
            principal,
            kind,
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
        raise _invalid([Violation("INPUT-01", "team_id", 'send exactly {"team_id": ...}')])
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


def _message(exc: DBAPIError, field: str = "M") -> str:
    """A field of the server's error (``M`` its message, ``D`` its detail)."""
    args = getattr(exc.orig, "args", ())
    return str(args[0].get(field, "")) if args and isinstance(args[0], dict) else ""


def _invalid(problems: list[Violation]) -> ValidationFailed:
    return ValidationFailed(f"{len(problems)} rule violation(s)", [p.as_dict() for p in problems])


# ---- reads ----------------------------------------------------------------------------------


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
    items = []
    for entry in entries:
        doc = canonical.read(entry.body)
        items.append(
            {
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
        )
    return {"id": entity_id, "entity_type": kind.type, "versions": items}


LIST_QUERY = ("status", "category", "limit", "cursor", "q", "tag")  # the Router refuses others


def list_entities(principal: Principal, slug: str, query: dict[str, str]) -> dict[str, Any]:
    """A page of a kind's current versions, filtered, with ``total``: how many match the
    filter on every page (counted in the same snapshot as the page)."""
    principal.require(*READ_ROLES)
    kind = resolve_kind(slug)
    errors: list[dict[str, str]] = []
    status = query.get("status") or None
    if status is not None and status not in lifecycle.STATUSES:
        errors.append({"field": "status", "message": f"must be one of {list(lifecycle.STATUSES)}"})
    category = query.get("category") or None
    if category is not None and "\x00" in category:
        errors.append({"field": "category", "message": "must not contain NUL"})
    if errors:
        raise InvalidQuery(errors)
    limit = query_params.integer(query, "limit", minimum=1, maximum=MAX_PAGE, default=DEFAULT_PAGE)
    assert limit is not None
    if category is not None and len(category) > MAX_CATEGORY:
        raise LimitExceeded(
            f"category must be at most {MAX_CATEGORY} characters",
            field="category",
            limit=MAX_CATEGORY,
        )
    wanted = heads.Filter(
        kind.type,
        status=status,
        category=category,
        q=_search_text(query, "q", MAX_NAME),
        tag=_search_text(query, "tag", MAX_TAG),
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


def _search_text(query: dict[str, str], name: str, limit: int) -> str | None:
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
