"""What one entry's bytes say, checked against its row, its chain and the tree: the part of
the entries pass that looks at a single entry (the single-entity report makes the same
checks). A version whose bytes hold is summarised (``Summary``) for the later passes."""

from __future__ import annotations

from typing import Any

import msgspec

from shared.audit import name_keys
from shared.audit.state import AuditState, Row, Summary, summary
from shared.integrity import canonical, digests
from shared.registry import documents
from shared.rules.inputs import unstorable_text
from shared.rules.kinds import KINDS, kind_for_type
from shared.rules.relations import referenced_ids, unique_key

# Per kind, its client fields kept in the relationships section: the only ones the
# cross-entity rules (check_relations) read. A derived one (a team's agents, which older
# team versions may hold) records nothing, so no rule reads it (shared.membership).
_RELATION_FIELDS = {
    kind.type: tuple(f.name for f in kind.fields if f.section == "relationships" and not f.derived)
    for kind in KINDS.values()
}

# kinds, statuses, categories: shared by the summaries (the extension interns in it too)
NAMES: dict[str, str] = {}


class _Identity(msgspec.Struct):
    id: str
    entity_type: str
    name: str
    tenant: str | None = None  # every layout writes it; None only if an insider drops it


class _Versioning(msgspec.Struct):
    version: int


class _Lifecycle(msgspec.Struct):
    status: str


class _Metadata(msgspec.Struct):
    category: str | None = None  # skills only


class _Checked(msgspec.Struct):
    """What the entries pass reads of a version's bytes: the fields its columns and its
    head repeat, and its relationships. The rest is parsed as JSON (the bytes must be valid) but
    not built into objects: a third of the cost of parsing the whole document."""

    identity: _Identity
    versioning: _Versioning
    lifecycle: _Lifecycle
    metadata: _Metadata
    relationships: dict[str, Any]


_read_checked = msgspec.json.Decoder(_Checked).decode  # raises a ValueError


def relations(entity_type: str, relationships: dict[str, Any]) -> dict[str, Any] | None:
    """A version's relationship fields, or None when all are null: check_relations finds
    nothing to check then (no reference, no required skills), so none is kept."""
    for value in relationships.values():
        if value is not None:
            break
    else:
        return None
    fields = {name: relationships.get(name) for name in _RELATION_FIELDS.get(entity_type, ())}
    return fields if any(v is not None for v in fields.values()) else None


def expected_key(entity_type: str, name: Any, relations: dict[str, Any] | None) -> str | None:
    """The uniqueness key a head of this version must hold, derived as the registry derives
    it (from the name, or from relationship fields); None where the version cannot have one
    (a kind or fields no registry write produces: its head is then named as altered)."""
    if entity_type == "skill" and type(name) is str and not (relations and "name" in relations):
        return name_keys.skill_key(name)  # unique_key's own, compiled for plain names
    try:
        return unique_key(kind_for_type(entity_type), {"name": name, **(relations or {})})
    except (KeyError, TypeError, AttributeError):
        return None


def ids(entity_type: str, fields: dict[str, Any]) -> set[str]:
    """The ids a version's relationship fields name."""
    return referenced_ids(kind_for_type(entity_type), fields)


def version(
    state: AuditState,
    index: int,
    kind: str,
    entity_id: str,
    number: int,
    digest: bytes,
    prev_digest: bytes | None,
    body: bytes,
) -> str | None:
    """A version whose bytes match the tree: the column its bytes contradict, if any; else it
    joins its entity's chain and, as the newest read, its summary is kept.

    The chain is checked here when the version follows the newest one read of its entity;
    any other order (a first version read that is not 1, a repeat, a gap) marks the entity
    ``irregular``, and ``chains.checked`` re-checks those entities as a whole.
    """
    try:
        doc = _read_checked(body)
        if not body.isascii():  # msgspec skips the members it does not read unchecked:
            body.decode()  # bytes that are not UTF-8 there are no version the registry writes
        # rare: a NUL, confirmed (or not) by reading the whole document
        whole = canonical.read(body) if b"\\u0000" in body else None
    except ValueError:
        return "body"
    if doc.identity.id != entity_id:
        return "entity_id"
    if doc.versioning.version != number:
        return "version"
    if doc.identity.entity_type != kind:
        return "kind"
    if doc.identity.tenant != state.tenant:  # replayed from another tenant's log
        return "tenant_id"
    fields = relations(kind, doc.relationships)
    known = state.latest.get(entity_id)
    if entity_id in state.irregular:
        pass  # ``chains.checked`` checks it as a whole
    elif known is None and state.opening is not None:
        if number != 1 or prev_digest is not None:  # for ``entries.merge``, in finding order
            state.opening[entity_id] = (number, prev_digest, index, kind, len(state.findings))
    elif known is not None or number != 1 or prev_digest is not None:  # else: nothing to link
        link(state, kind, entity_id, number, prev_digest, index, known)
    if known is None or number > known.version:
        status = NAMES.setdefault(doc.lifecycle.status, doc.lifecycle.status)
        kind = NAMES.setdefault(kind, kind)  # one string per kind, not per entity
        category = doc.metadata.category
        if category is not None:
            category = NAMES.setdefault(category, category)
        # the index of version 1, when this pass read it
        first = known.first if known is not None else (index if number == 1 else None)
        state.latest[entity_id] = summary(
            (index, number, digest, status, kind, fields, doc.identity.name, category, first)
        )
    if whole is not None:
        _unstorable(state, index, kind, entity_id, number, whole)
    return None


def _unstorable(
    state: AuditState, index: int, kind: str, entity_id: str, number: int, doc: Any
) -> None:
    """A version holding text the registry refuses at input (a NUL, which jsonb cannot hold):
    written past the checks, so named, by its first field path (all in ``fields``)."""
    found = [
        (section, path)
        for section in documents.SECTIONS
        for path in unstorable_text(doc.get(section), "")
    ]
    if not found:
        return  # an escaped backslash before "u0000": plain text
    section, path = found[0]
    state.add(
        "rule_violation",
        f"version {number} holds a NUL in {section}.{path}, which the registry refuses "
        "at input (PostgreSQL's jsonb cannot hold it)",
        entity_type=kind,
        entity_id=entity_id,
        version=number,
        log_index=index,
        section=section,
        field=path,
        rule="INPUT-02",
        extra={"fields": [f"{s}.{p}" for s, p in found[:50]]},
    )


def link(
    state: AuditState,
    kind: str,
    entity_id: str,
    number: int,
    prev_digest: bytes | None,
    index: int,
    known: Summary | None,
) -> None:
    """A version read after ``known``, the newest read of its entity: it must follow it and
    link to its digest (a first version links to nothing); any other order marks the entity
    ``irregular``, for ``chains.checked`` to check as a whole."""
    if known is None:
        if number != 1:
            state.irregular.add(entity_id)
        elif prev_digest is not None:
            chain_broken(state, kind, entity_id, number, index)
    elif known.version == number - 1:
        if prev_digest != known.digest:
            chain_broken(state, kind, entity_id, number, index)
    else:
        state.irregular.add(entity_id)


def chain_broken(state: AuditState, kind: str, entity_id: str, number: int, index: int) -> None:
    """A version whose link does not name the digest of the version before it."""
    state.add(
        "chain_broken",
        f"version {number} does not link to version {number - 1}",
        entity_type=kind,
        entity_id=entity_id,
        version=number,
        log_index=index,
    )


def column_finding(state: AuditState, row: Row, column: str) -> None:
    """A row whose ``column`` contradicts the bytes the tree vouches for."""
    state.add(
        "altered",
        f"entry {row.index}'s {column} column disagrees with its bytes",
        entity_type=row.kind,
        entity_id=row.entity_id,
        version=row.version,
        log_index=row.index,
        section="row",
        field=column,
    )


def column_check(state: AuditState, row: Row, leaf: bytes) -> None:
    """A row's columns must agree with the bytes they describe (one entity's report)."""
    if row.index in state.reported:
        return
    column = None
    if row.leaf_hash != leaf:
        column = "leaf_hash"
    elif row.digest != digests.sha256(row.body):
        column = "digest"
    elif row.entry_type == "version":
        column = version(
            state,
            row.index,
            row.kind,
            row.entity_id,
            row.version,
            row.digest,
            row.prev_digest,
            row.body,
        )
    if column:
        column_finding(state, row, column)


def classify(
    state: AuditState, mismatched: list[tuple[Row, bytes]], moved_from: dict[bytes, int]
) -> None:
    """Bytes that disagree with the tree: moved from another index, or edited."""
    for row, leaf in mismatched:
        if row.index in state.reported:
            continue
        origin_index = moved_from.get(leaf)
        where = dict(
            entity_type=row.kind,
            entity_id=row.entity_id,
            version=row.version,
            log_index=row.index,
        )
        if origin_index is not None and origin_index != row.index:
            state.add(
                "reordered",
                f"entry {row.index} holds the bytes logged at {origin_index}",
                extra={"expected_index": origin_index},
                **where,
            )
        elif row.entry_type == "certificate":
            state.add(
                "certificate_invalid",
                f"certificate at {row.index} does not match the logged bytes",
                **where,
            )
        else:
            _altered(state, row)


# Why an altered version's field is not named: the per-field digests stored beside the row
# (``field_hashes``) are locators no signature covers, so an insider who rewrites the bytes
# can rewrite them to point at any field; only the leaf hash (receipt, signed tree) is evidence.
UNNAMED = "the per-field digests kept beside the entry are not signed, so they cannot name it"


def _altered(state: AuditState, row: Row) -> None:
    """A version whose bytes are not those the tree and its receipt vouch for: named by
    entity, version and index; the field that changed cannot be named (``UNNAMED``): the
    original bytes are gone and nothing signed says which part of them differed."""
    where: dict[str, Any] = dict(
        entity_type=row.kind, entity_id=row.entity_id, version=row.version, log_index=row.index
    )
    try:
        canonical.read(row.body)
    except (ValueError, AttributeError, TypeError):
        state.add("altered", f"entry {row.index}'s bytes are no longer valid JSON", **where)
        return
    state.add(
        "altered",
        f"entry {row.index}'s bytes changed; which field cannot be named: {UNNAMED}",
        extra={"field_unnamed": UNNAMED},
        **where,
    )
