"""Who depends on an entity: the live entities whose current versions reference it, and the
certified ones that must leave ``certified`` with it (the certification cascade).

References are read from the stored current versions (each head's body in the ledger), the
same bytes the audit's rules read, so what the cascade moves and what the audit checks never
come from two sources. Every reference field counts here (a job role's skills and industry;
a team's job role, industry and agents; an agent's skill, job role, industry and team; any
kind's governance agent), membership included: a team whose certified agent leaves
``certified`` is no longer the team that was certified, and the same goes for the agents of
a team that leaves it. Cycles (a team and its agents) end because each entity moves once.

Membership has one record (``shared.registry.membership``): an agent's ``team_id``. A team's own
``agents`` field is derived, never read from its stored versions here; a team uses the agents
whose current versions name it, and an agent changing teams counts for both teams.

Cost: one read of the tenant's certified heads and their current bodies per lookup (no index
of references exists); a write that moves nothing certified never looks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared.integrity import canonical
from shared.rules.kinds import KINDS, TYPE_TO_SLUG
from shared.storage import heads

log = logging.getLogger(__name__)

SYSTEM = "system"  # the actor of every version the cascade writes
DEAD = ("suspended", "deprecated")
MAX_NAMED = 3  # dependencies named in one reason; the rest are counted


@dataclass(frozen=True)
class Live:
    """A live entity's current version as stored: its head, bytes, document and digest,
    and the ids its relationships name."""

    head: heads.Head
    body: bytes
    digest: bytes
    doc: dict[str, Any]
    references: frozenset[str]


@dataclass(frozen=True)
class Moved:
    """An entity the cascade moves out of ``certified``, with its new status and why."""

    live: Live
    status: str
    because: tuple[str, ...]  # what it references that moved: the origin first, then by id


def named_ids(entity_type: str, relationships: dict[str, Any]) -> frozenset[str]:
    """Every id a version's relationships section names in a reference field."""
    kind = KINDS[TYPE_TO_SLUG[entity_type]]
    ids: set[str] = set()
    for field in kind.fields:
        if field.references is None or field.derived:  # a team's agents: certified_dependents
            continue
        value = relationships.get(field.name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                ids.add(item)
    return frozenset(ids)


def _live(conn: Connection, status: str | None) -> list[Live]:
    """The tenant's non-deprecated current versions (of ``status`` only, if given)."""
    rows = conn.execute(
        text(
            "SELECT CAST(h.entity_id AS text), h.kind, h.version, h.status, h.name, "
            "h.first_index, h.log_index, e.body, e.digest FROM entity_heads h "
            "JOIN log_entries e ON e.tenant_id = h.tenant_id AND e.idx = h.log_index "
            "WHERE h.status <> 'deprecated' "
            "AND (CAST(:status AS text) IS NULL OR h.status = :status)"
        ),
        {"status": status},
    ).all()
    out = []
    for row in rows:
        head, body = heads.Head(*row[:7]), bytes(row[7])
        try:
            doc = canonical.read(body)
            refs = named_ids(head.kind, doc["relationships"])
        except (ValueError, KeyError, TypeError, AttributeError):
            # Bytes the registry never wrote: the audit names them; nothing is moved on them.
            log.warning("current version of %s at %d cannot be read", head.entity_id, row[6])
            continue
        out.append(Live(head, body, bytes(row[8]), doc, refs))
    return out


def referencing(conn: Connection, ids: Iterable[str], *, status: str | None = None) -> list[Live]:
    """Live entities (of ``status``, if given) whose stored current version references any
    of ``ids`` in a reference field, in id order: references looked up backwards, from the
    bytes the audit's rules read (text that merely mentions an id does not count)."""
    wanted = set(ids)
    found = [
        e for e in _live(conn, status) if e.references & wanted and e.head.entity_id not in wanted
    ]
    return sorted(found, key=lambda e: e.head.entity_id)


def _team_of(live: Live) -> str | None:
    """The team an agent's current version names (``team_id``), if any."""
    if live.head.kind != "agent":
        return None
    team = live.doc["relationships"].get("team_id")
    return team if isinstance(team, str) else None


def certified_dependents(
    conn: Connection, origin: str, origin_status: str, origin_teams: Iterable[str] = ()
) -> list[Moved]:
    """The certified entities that reference ``origin`` (which is leaving ``certified`` for
    ``origin_status``), directly or through other such entities, in id order.

    A team references its agents: the certified agents whose current version names it and,
    when ``origin`` is an agent, ``origin`` for the team it named before the write and each
    of ``origin_teams`` (the team it names after). Each moves to ``suspended`` when something
    it references in the cascade is suspended or deprecated, else to
    ``pending_certification``. Reads the certified heads once.
    """
    everyone = _live(conn, "certified")
    members: dict[str, set[str]] = {team: {origin} for team in origin_teams}
    for entity in everyone:
        team = _team_of(entity)
        if team is not None:
            members.setdefault(team, set()).add(entity.head.entity_id)
    certified = [
        replace(e, references=e.references | members.get(e.head.entity_id, set()))
        if e.head.kind == "team"
        else e
        for e in everyone
        if e.head.entity_id != origin
    ]
    users: dict[str, list[Live]] = {}
    for entity in certified:
        for ref in entity.references:
            users.setdefault(ref, []).append(entity)
    reached: dict[str, Live] = {}
    frontier = [origin]
    while frontier:
        nxt = []
        for ref in frontier:
            for entity in users.get(ref, ()):
                if entity.head.entity_id not in reached:
                    reached[entity.head.entity_id] = entity
                    nxt.append(entity.head.entity_id)
        frontier = nxt
    status = dict.fromkeys(reached, "pending_certification")
    status[origin] = origin_status
    changed = True
    while changed:  # a fixpoint: suspension spreads along references, cycles included
        changed = False
        for entity_id, entity in reached.items():
            if status[entity_id] != "suspended" and any(
                status.get(ref) in DEAD for ref in entity.references
            ):
                status[entity_id], changed = "suspended", True
    moved = []
    for entity_id in sorted(reached):
        entity = reached[entity_id]
        others = sorted(ref for ref in entity.references if ref in status and ref != origin)
        because = (*([origin] if origin in entity.references else []), *others)
        moved.append(Moved(entity, status[entity_id], because))
    return moved


def reason(moved: Moved, versions: dict[str, tuple[str, int, str]]) -> str:
    """The amendment reason of a cascade version: each dependency that moved, its new
    version and status (``versions``: id -> (type, new version, new status))."""
    parts = [
        f"{versions[ref][0]} {ref} is now version {versions[ref][1]} ({versions[ref][2]})"
        for ref in moved.because[:MAX_NAMED]
    ]
    more = len(moved.because) - MAX_NAMED
    tail = f" and {more} more" if more > 0 else ""
    return "certification lapsed: " + "; ".join(parts) + tail
