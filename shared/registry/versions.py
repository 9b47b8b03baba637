"""How a write becomes a version: build it, append it (alone, grouped with other threads' or
with the cascade it starts) and move its entity's head; constraint races become 409/412."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from shared.errors import Conflict, PreconditionFailed, ValidationFailed
from shared.integrity import canonical, digests
from shared.registry import dependents, documents
from shared.registry.documents import Change
from shared.rules.catalogue import Violation, rules_for
from shared.rules.kinds import TYPE_TO_SLUG, Kind, kind_for_type
from shared.rules.relations import Ref, referenced_ids, unique_key
from shared.security.principal import Principal
from shared.storage import heads, ledger
from shared.storage.engine import database, sqlstate
from shared.storage.group import GroupCommits
from shared.tlog import receipts


@dataclass(frozen=True)
class VersionWrite:
    """What a write makes of one entity: the head it read (None: a new entity), the client
    fields, the new status and the record of why; the rest is carried over from the version
    it follows (``certification``, ``created_at``, ``previous_digest``) or re-checked by the
    statement (``check_unique``, ``pins``: referenced entity id -> the log index read)."""

    entity_id: str
    head: heads.Head | None
    fields: dict[str, Any]
    status: str
    reason: str
    action: str
    request_id: str
    certification: dict[str, Any] | None = None
    created_at: str | None = None
    previous_digest: bytes | None = None
    check_unique: bool = False
    pins: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Document:
    """A served version and its ETag version number."""

    body: dict[str, Any]
    version: int
    cascade: tuple[dict[str, Any], ...] = ()  # the entities the write moved out of certified
    receipt: dict[str, Any] | None = None  # a write's signed receipt (JSON), none on reads


Written = tuple[int, dict[str, Any]]  # a new version's log index and its receipt's JSON


@contextmanager
def write_transaction(principal: Principal) -> Iterator[Connection]:
    """A write transaction for the caller's tenant; constraint races become 409/412."""
    with _constraint_races(), database().transaction(principal.tenant) as conn:
        yield conn


@contextmanager
def signed_write() -> Iterator[Connection]:
    """A transaction for one append statement and its receipt, signed after the statement
    assigns the index and stored by the statement that commits (``engine.begun``: two
    round trips); constraint races become 409/412."""
    with _constraint_races(), database().begun() as conn:
        yield conn


def appended_in(conn: Connection, new: ledger.NewVersion) -> Written:
    """Append ``new`` in ``conn``'s transaction and sign and store its receipt there."""
    index = ledger.append_version(conn, new).index
    (receipt,) = receipts.record(conn, new.tenant, index, [new.encoded.leaf_hash])
    return index, receipt.to_json()


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


UNIQUE_TAKEN = "PL409"  # raised by plant_append_version with the holder's id as message


def unique_rule(kind: Kind) -> tuple[str, str]:
    """The uniqueness rule of a kind and the field its violations name."""
    return ("L1-SKILL-02", "name") if kind.type == "skill" else ("L1-AGENT-03", "skill_id")


@contextmanager
def unique_taken_is_409(kind: Kind) -> Iterator[None]:
    """The write functions refuse a taken unique key with SQLSTATE ``UNIQUE_TAKEN`` and the
    holder's id: a 409 naming the rule and the holder."""
    try:
        yield
    except DBAPIError as exc:
        if sqlstate(exc) != UNIQUE_TAKEN:
            raise
        holder, name = _message(exc), _message(exc, "D")
        rule, field = unique_rule(kind)
        raise Conflict(
            f"a live {kind.type} with the same unique key already exists: {holder} ({name!r})",
            violations=[Violation(rule, field, f"already taken by {holder} ({name!r})").as_dict()],
            existing_id=holder,
            existing_name=name,
        ) from exc


def usable_fields(kind: Kind, fields: dict[str, Any], problems: list[Violation]) -> dict[str, Any]:
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


def passed_rules(kind: Kind) -> list[dict[str, Any]]:
    """The write rules a version of ``kind`` passed (each document gets its own list)."""
    return [{"rule": rule, "result": "pass"} for rule in _write_rules(kind.type)]


@functools.cache
def _write_rules(entity_type: str) -> tuple[str, ...]:
    """The ids of the catalogue's write rules for a type, input checks left out (the
    catalogue is fixed at import)."""
    return tuple(r.id for r in rules_for(entity_type, "write") if not r.id.startswith("INPUT"))


def new_version(tenant: str, actor: str, kind: Kind, write: VersionWrite) -> ledger.NewVersion:
    """Version (head.version + 1) of an entity, encoded, with the head move it makes."""
    now = canonical.now_text()
    head, fields = write.head, write.fields
    version = 1 if head is None else head.version + 1
    previous_digest = write.previous_digest
    change = Change(
        tenant=tenant,
        entity_id=write.entity_id,
        version=version,
        status=write.status,
        created_at=write.created_at or now,
        updated_at=now,
        previous_digest=digests.label(previous_digest) if previous_digest else None,
        amendment_reason=write.reason,
        actor=actor,
        request_id=write.request_id,
        action=write.action,
        rule_results=passed_rules(kind),
        certification=write.certification,
    )
    encoded = documents.encode(documents.build(kind, fields, change))
    move = ledger.HeadMove(
        status=write.status,
        name=fields["name"],
        category=fields.get("category"),
        unique_key=unique_key(kind, fields),
        check_unique=write.check_unique,
        at=now,
        expect_index=None if head is None else head.log_index,
        pins=write.pins,
    )
    return ledger.NewVersion(
        tenant=tenant,
        kind=kind.type,
        entity_id=write.entity_id,
        version=version,
        encoded=encoded,
        prev_digest=previous_digest,
        actor=actor,
        move=move,
    )


def append_version(
    conn: Connection | None, principal: Principal, kind: Kind, write: VersionWrite
) -> Document:
    """Append version (head.version + 1) of an entity and move its head to it, in one
    statement: inside the caller's transaction (``conn``), or, with ``conn`` None, as its own
    transaction after reading ``write.head`` and the references (``write.pins``) without
    locks, grouped with the writes of other threads that run at the same time
    (``shared.storage.group``).

    A version that takes a certified entity out of ``certified`` is written with its
    cascade (``_append_leaving``), in ``conn`` or in a transaction of its own."""
    new = new_version(principal.tenant, principal.subject, kind, write)
    encoded, head, request_id = new.encoded, write.head, write.request_id
    with unique_taken_is_409(kind):
        if head is not None and head.status == "certified" and write.status != "certified":
            if conn is None:
                with write_transaction(principal) as own:
                    return _append_leaving(own, new, request_id)
            return _append_leaving(conn, new, request_id)
        index, receipt = _appends.submit(new) if conn is None else appended_in(conn, new)
    body = documents.served(encoded.body, index, encoded.leaf_hash, encoded.digest)
    return Document(body, new.version, receipt=receipt)


def _append_leaving(conn: Connection, new: ledger.NewVersion, request_id: str) -> Document:
    """Append ``new``, which takes its entity out of ``certified``, and a version of every
    certified entity that depends on it (``shared.registry.dependents``), in ``conn``'s transaction.

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
    signed = receipts.record(conn, new.tenant, indices[0], [i.encoded.leaf_hash for i in items])
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
        signed[0].to_json(),
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
        VersionWrite(
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
        ),
    )


def _append_alone(new: ledger.NewVersion) -> Written:
    with signed_write() as conn:
        index = ledger.append_version(conn, new).index
        ((receipt,),) = receipts.record_and_commit(
            conn, [(new.tenant, index, [new.encoded.leaf_hash])]
        )
        return index, receipt.to_json()


def _append_together(group: Sequence[ledger.NewVersion]) -> list[Written | None]:
    """One statement for the group, then one signature per tenant over the range it appended
    there (the counter is held to the commit, so those indices are contiguous): a batch
    receipt, each writer getting its entry's path (``receipts.record_and_commit``). One for
    the group rather than one per entry: the counter is held while it is signed."""
    with signed_write() as conn:
        indices = ledger.append_versions(conn, group)
        out: list[Written | None] = [None] * len(group)
        taken: dict[str, list[tuple[int, int]]] = {}
        for at, index in enumerate(indices):
            if index is not None:
                taken.setdefault(group[at].tenant, []).append((index, at))
        ranges = []
        for tenant, appended in taken.items():
            appended.sort()
            if appended[-1][0] - appended[0][0] != len(appended) - 1:  # never: each alone
                raise RuntimeError("a group's appended indices are not contiguous")
            ranges.append(
                (tenant, appended[0][0], [group[at].encoded.leaf_hash for _, at in appended])
            )
        if not ranges:
            conn.exec_driver_sql("COMMIT")
            return out
        signed = receipts.record_and_commit(conn, ranges)
        for appended, entries in zip(taken.values(), signed, strict=True):
            for (index, at), receipt in zip(appended, entries, strict=True):
                out[at] = (index, receipt.to_json())
        return out


# Creates and amendments of one tenant that run at the same time in this process share
# statements (a queue per tenant: a group never waits for another tenant's counter); two may
# be on their way at once, so one group's round trip overlaps the other's execution (the
# second waits on the server for the tenant's counter, which the first holds until it commits).
_appends: GroupCommits[ledger.NewVersion, Written] = GroupCommits(
    lambda new: new.tenant,
    _append_alone,
    _append_together,
    limit=ledger.MAX_GROUP,
    in_flight=2,
)


def _message(exc: DBAPIError, field: str = "M") -> str:
    """A field of the server's error (``M`` its message, ``D`` its detail)."""
    args = getattr(exc.orig, "args", ())
    return str(args[0].get(field, "")) if args and isinstance(args[0], dict) else ""


def invalid(problems: list[Violation]) -> ValidationFailed:
    return ValidationFailed(f"{len(problems)} rule violation(s)", [p.as_dict() for p in problems])
