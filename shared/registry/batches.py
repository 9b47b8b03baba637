"""Batch creates: many entities of one kind at once, all or nothing, within the process's
batch slots."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared.config import settings
from shared.errors import Conflict, PayloadTooLarge
from shared.integrity import canonical, digests
from shared.integrity.receipts import BatchEntryReceipt
from shared.registry import collector, documents
from shared.registry.admission import Slots
from shared.registry.documents import Change
from shared.registry.ids import new_entity_id
from shared.registry.versions import (
    invalid,
    passed_rules,
    pinned_references,
    unique_rule,
    usable_fields,
    write_transaction,
)
from shared.rules import inputs, names
from shared.rules.catalogue import Violation
from shared.rules.kinds import Kind, resolve_kind
from shared.rules.relations import Ref, check_relations, referenced_ids, unique_key
from shared.security.principal import Principal
from shared.storage import ledger
from shared.storage.engine import database, retry_transient
from shared.tlog import receipts

MAX_BATCH = 10_000
_batches = Slots(lambda: settings().max_batches, "batch")


@contextmanager
def batch_admitted(principal: Principal) -> Iterator[None]:
    """Hold one of the process's batch slots (``shared.registry.admission``) for the caller's
    tenant, or raise ServiceUnavailable (503) at once. Taken before the request's body is read, so a
    refused batch costs no parsing and never waits holding a server thread."""
    principal.require("author")
    with _batches.held(principal.tenant):
        yield


def create_batch(principal: Principal, slug: str, bodies: Any, request_id: str) -> dict[str, Any]:
    """Create many entities of one kind at once: all or nothing, in one statement.

    Every item is checked as ``create`` checks one (violations name ``items[i].field``, all
    reported together), plus uniqueness inside the batch; then version 1 of each is appended
    with one move of the log counter and one batch receipt signed over its range. Returns
    ``items``: per item in order, its id, version, log index, digest, leaf hash and receipt
    path (the full documents are one GET away); and ``receipt``, the batch receipt. The HTTP
    route runs it inside ``batch_admitted``.
    """
    with collector.paused():  # its items live until it ends: nothing for the collector
        return _create_batch(principal, slug, bodies, request_id)


@retry_transient()
def _create_batch(principal: Principal, slug: str, bodies: Any, request_id: str) -> dict[str, Any]:
    principal.require("author")
    kind = resolve_kind(slug)
    if not isinstance(bodies, list) or not bodies:
        raise invalid([Violation("INPUT-01", "items", "must be a non-empty list")])
    if len(bodies) > MAX_BATCH:
        raise PayloadTooLarge(f"a batch holds at most {MAX_BATCH} items", limit=MAX_BATCH)
    checked = [inputs.check_write(kind, body, current=None) for body in bodies]
    usable = [usable_fields(kind, fields, problems) for fields, _, problems in checked]
    wanted: set[str] = set()
    for fields in usable:
        wanted |= referenced_ids(kind, fields)
    refs: dict[str, Ref] = {}
    pins: dict[str, int] = {}
    if wanted:
        with database().transaction(principal.tenant) as conn:
            refs, pins = pinned_references(conn, kind, {}, ids=wanted)
    problems: list[Violation] = []
    keys: list[str | None] = []
    seen: dict[tuple[int, str], int] = {}  # (place, reading) -> the item that holds it
    for i, ((fields, _, own), use) in enumerate(zip(checked, usable, strict=True)):
        found = own + (
            [] if any(p.field == "" for p in own) else check_relations(kind, use, None, refs)
        )
        key = None if found else unique_key(kind, fields)
        keys.append(key)
        held = [] if key is None else list(enumerate(names.readings(key)))
        first = next((seen[r] for r in held if r in seen), None)
        if first is not None:
            found.append(_duplicate_in_batch(kind, first))
        else:
            seen.update(dict.fromkeys(held, i))
        problems += [Violation(p.rule, _item_field(i, p.field), p.message) for p in found]
    if problems:
        raise invalid(problems)
    now = canonical.now_text()
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
        rule_results=passed_rules(kind),
    )
    items = [
        ledger.NewItem(
            new_entity_id(), fields["name"], fields.get("category"), key, fields.get("tags") or []
        )
        for (fields, _, _), key in zip(checked, keys, strict=True)
    ]
    made: list[ledger.Encoded] = []
    done: dict[str, Any] = {}

    def encoded() -> Iterator[ledger.Encoded]:  # on the ledger's helper thread, as needed
        for (fields, _, _), item in zip(checked, items, strict=True):
            made.append(
                documents.encode(documents.build(kind, fields, change, str(item.entity_id)))
            )
            yield made[-1]

    def signed(first: int) -> None:  # on the same thread, while the server appends the last
        row, batch, entries = receipts.sign_batch(
            principal.tenant, first, [enc.leaf_hash for enc in made]
        )
        done.update(row=row, receipt=batch.to_json(), items=_made(items, made, entries))

    with _taken_is_409(kind), write_transaction(principal) as conn:
        ledger.create_versions(
            conn,
            principal.tenant,
            kind=kind.type,
            items=items,
            encoded=encoded(),
            actor=principal.subject,
            at=now,
            pins=pins,
            then=signed,
        )
        receipts.store(conn, principal.tenant, done["row"])
    return {"items": done["items"], "receipt": done["receipt"]}


def _made(
    items: list[ledger.NewItem],
    made: list[ledger.Encoded],
    entries: list[BatchEntryReceipt],
) -> list[dict[str, Any]]:
    """The response's items: per item in order, its id, version, index, digest, leaf hash
    and receipt path."""
    return [
        {
            "id": str(item.entity_id),
            "version": 1,
            "log_index": receipt.index,
            "digest": digests.label(enc.digest),
            "leaf_hash": digests.b64(enc.leaf_hash),
            "receipt_path": [digests.b64(node) for node in receipt.path],
        }
        for item, enc, receipt in zip(items, made, entries, strict=True)
    ]


def batch_items(body: Any) -> Any:
    """The list a batch request carries: ``{"items": [...]}``."""
    if not isinstance(body, dict) or set(body) != {"items"}:
        raise invalid([Violation("INPUT-01", "items", 'send exactly {"items": [...]}')])
    return body["items"]


def _item_field(index: int, field: str) -> str:
    return f"items[{index}]" + (f".{field}" if field else "")


@contextmanager
def _taken_is_409(kind: Kind) -> Iterator[None]:
    """Every item whose unique key a live entity holds, named in one 409 (``items[i].name``
    and the holder); the first holder is also ``existing_id`` and ``existing_name``, as a
    single create's 409 has them."""
    try:
        yield
    except ledger.KeysTaken as exc:
        rule, field = unique_rule(kind)
        first, holder, name = exc.taken[0]
        count = len(exc.taken)
        raise Conflict(
            f"{_item_field(first, field)} reads as {name!r}, which a live {kind.type} holds"
            if count == 1
            else f"{count} items read as names live {kind.type}s hold, the first {name!r}",
            violations=[
                Violation(rule, _item_field(i, field), f"already taken by {h} ({n!r})").as_dict()
                for i, h, n in exc.taken
            ],
            existing_id=holder,
            existing_name=name,
        ) from exc


def _duplicate_in_batch(kind: Kind, first: int) -> Violation:
    rule, field = unique_rule(kind)
    return Violation(rule, field, f"same unique key as items[{first}]")
