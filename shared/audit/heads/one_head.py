"""Checking one head: against the summary of the version the entries pass read, or against
the ledger read again; each column it repeats that disagrees is named."""

from __future__ import annotations

from typing import Any

from shared.audit import rules, versions
from shared.audit.heads.reading import _Head, _version_bounds, _versions_at_heads
from shared.audit.state import AuditState, Summary
from shared.integrity import canonical

# The columns a head repeats from the ledger, in the order _said and the checks use
_HEAD_FIELDS = ("version", "kind", "status", "name", "category", "first_index", "unique_key")


def _shown(value: Any, limit: int = 80) -> str:
    """A column's value in a finding's text, cut short: a rewritten head column may be any
    length."""
    text_ = str(value)
    return text_ if len(text_) <= limit else text_[:limit] + "..."


def _said(head: tuple[Any, ...]) -> tuple[Any, ...]:
    """A head's ``_HEAD_FIELDS``, from the head as read."""
    return head[0], head[4], head[5], head[6], head[7], head[2], head[8]


def _head(
    state: AuditState,
    head: tuple[Any, ...],
    gathered: rules.Rules | rules.RuleCalls,
    uncovered: list[_Head],
    first_unread: list[tuple[_Head, Summary]],
) -> None:
    """One head as read: checked against the summary of the version it points at, or set
    aside for what needs the ledger again (``uncovered``, ``first_unread``)."""
    log_index = head[1]
    if log_index in state.reported:
        return
    entity_id = head[3].decode()
    known = state.latest.get(entity_id)
    if known is None or known.log_index != log_index:
        uncovered.append((*head[:3], entity_id, *head[4:]))
        return
    if known.first is None:
        first_unread.append(((*head[:3], entity_id, *head[4:]), known))
    else:
        _against_summary(state, entity_id, head, known, known.first)
    if known.relations is not None or entity_id in gathered.wanted:
        gathered.current(entity_id, known.kind, head[5], known.version, known.relations)


def _against_summary(
    state: AuditState, entity_id: str, head: tuple[Any, ...], known: Summary, first: int | None
) -> None:
    """A head pointing at the version this pass checked: each column it repeats must say
    what that version's bytes say, and its first index where version 1 is (``first``)."""
    logged = (
        known.version, known.kind, known.status, known.name, known.category, first,
        versions.expected_key(known.kind, known.name, known.relations),
    )  # fmt: skip
    said = _said(head)
    if said != logged:
        _fields(state, (entity_id, known.kind, known.version, head[1]), said, logged)


def _uncovered(state: AuditState, uncovered: list[_Head], gathered: rules.Rules) -> None:
    """Heads the entries pass's summaries cannot vouch for: read the ledger again."""
    ids = {u[3] for u in uncovered}
    stored = _versions_at_heads(state, ids)
    bounds = _version_bounds(state, ids) if ids else {}
    for head in uncovered:
        version, log_index, _, entity_id, kind, status = head[:6]
        e_version, body, e_type = stored.get(entity_id, (None, None, None))
        logged: tuple[Any, ...] | None = None
        if body is not None and e_type == "version" and e_version == version:
            try:
                doc = canonical.read(body)
                identity = doc["identity"]
                relations = versions.relations(identity["entity_type"], doc["relationships"])
                logged = (
                    identity["id"],
                    identity["entity_type"],
                    doc["lifecycle"]["status"],
                    identity["name"],
                    doc["metadata"].get("category"),
                )
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # reported as altered by the entry check
        if logged is None or logged[0] != entity_id:  # nothing there, or another entity
            state.add(
                "altered",
                "the entity's head does not point at its current version",
                section="entity_heads",
                field="log_index",
                entity_type=kind,
                entity_id=entity_id,
                version=version,
                log_index=log_index,
            )
            continue
        _, logged_kind, logged_status, logged_name, logged_category = logged
        latest, first = bounds.get(entity_id, (None, None))
        if latest is not None and latest > version:
            _behind(state, latest, logged_kind, entity_id, version, log_index)
        logged_key = versions.expected_key(logged_kind, logged_name, relations)
        _fields(
            state,
            (entity_id, logged_kind, version, log_index),
            _said(head),
            (version, logged_kind, logged_status, logged_name, logged_category, first, logged_key),
        )
        gathered.current(entity_id, logged_kind, status, version, relations)


def _behind(
    state: AuditState, latest: int, kind: str, entity_id: str, version: int, log_index: int
) -> None:
    """A head at an older version than the ledger's newest: the head was moved back (what
    the head row says is named, not the genuine newer versions)."""
    state.add(
        "rollback",
        f"the head is at version {version} but the ledger holds version {latest}",
        section="entity_heads",
        field="version",
        entity_type=kind,
        entity_id=entity_id,
        version=version,
        log_index=log_index,
        extra={"ledger_version": latest},
    )


def _fields(
    state: AuditState,
    where: tuple[str, str, int, int],
    said: tuple[Any, ...],
    logged: tuple[Any, ...],
) -> None:
    """Each of a head's ``_HEAD_FIELDS`` that disagrees with the version it points at:
    ``said`` by the head, ``logged`` by the ledger; ``where`` is that version's entity id,
    kind, version and log index."""
    entity_id, kind, version, log_index = where
    for name, head_value, value in zip(_HEAD_FIELDS, said, logged, strict=True):
        if head_value != value:
            state.add(
                "altered",
                f"the head says {name} {_shown(head_value)}, the ledger says {_shown(value)}",
                section="entity_heads",
                field=name,
                entity_type=kind,
                entity_id=entity_id,
                version=version,
                log_index=log_index,
            )
