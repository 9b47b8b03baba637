"""Team membership, recorded once: each agent's ``team_id`` in its current version.

A team's members are its live agents (neither suspended nor deprecated) whose current version
names it as their ``team_id``; ``POST /registry/agents/{id}/team`` assigns, moves and takes
agents out, and deprecating or suspending an agent takes it out of the list. A team's own
``relationships.agents`` records nothing: a write that sends it is refused (422, pointing at
that route), a new team version stores it empty, and the team documents the registry serves
(a read, a list, a write's or a certification's response) carry the list found here, filled
in at read time and never hashed into the team's version. Certification's L1-TEAM-01 counts
the same list (``confirmed``).

One indexed query finds a team's members: an agent's head holds the ``team_id`` of its current
version as the last part of its uniqueness key (``skill|job role|team``, written with the
version in the same statement, and re-derived from the logged bytes by every audit), which
the database derives into the head's ``team_id`` column, indexed among live agents (migrations
0012 and 0031).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared.errors import IntegrityViolation
from shared.integrity import canonical
from shared.rules.inputs import unstorable_text
from shared.storage.engine import database

FIELD = "agents"  # the team's served field

# The predicate of migration 0031's partial index, word for word (so the planner uses it,
# and prices every other path out: see the migration); the statuses are
# shared.rules.relations.NOT_LIVE.
_MEMBERS = (
    "SELECT h.team_id, CAST(h.entity_id AS text), h.log_index, h.first_index{body} "
    "FROM entity_heads h{join} "
    "WHERE h.kind = 'agent' AND h.status NOT IN ('suspended', 'deprecated') "
    "AND plant_team_listed(h.team_id) AND h.team_id = ANY(CAST(:teams AS text[]))"
)  # sorted here: ORDER BY first_index would tempt the planner onto that index instead
_HEADS = text(_MEMBERS.format(body="", join=""))
_WITH_BODIES = text(
    _MEMBERS.format(
        body=", e.body",
        join=" JOIN log_entries e ON e.tenant_id = h.tenant_id AND e.idx = h.log_index",
    )
)


def live_agents(conn: Connection, team_ids: Collection[str]) -> dict[str, list[str]]:
    """Each team's live agents, in the order they were created (every team asked for is a
    key, an empty list where it has none): one query, on the agents' heads alone."""
    out: dict[str, list[str]] = {team: [] for team in team_ids}
    if out:
        rows = conn.execute(_HEADS, {"teams": sorted(out)}).all()
        for team, agent_id, _, _ in sorted(rows, key=lambda row: row[3]):
            out[team].append(agent_id)
    return out


def confirmed(conn: Connection, team_id: str) -> list[str]:
    """The team's live agents as ``live_agents`` finds them, each confirmed by the bytes of
    its current version (certification rests on them, not on the heads' projection).

    Only these agents' bodies are read: one that cannot be read, holds text the registry
    refuses at input (a NUL) or names another team stops this team's certification alone
    (409 naming the agent and its log index), never the tenant's.
    """
    members = []
    rows = conn.execute(_WITH_BODIES, {"teams": [team_id]}).all()
    for _, agent_id, index, _, body in sorted(rows, key=lambda row: row[3]):
        where = f"agent {agent_id}'s current version (log index {index})"
        try:
            doc = canonical.read(bytes(body))
            team = doc["relationships"]["team_id"]
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityViolation(f"{where} cannot be read; run an audit of the tenant") from exc
        if next(unstorable_text(doc), None) is not None:
            raise IntegrityViolation(
                f"{where} holds text the registry refuses at input (a NUL); "
                "run an audit of the tenant"
            )
        if team != team_id:
            raise IntegrityViolation(
                f"{where} names team {team}, its head team {team_id}; run an audit of the tenant"
            )
        members.append(agent_id)
    return members


def fill(conn: Connection, docs: Iterable[dict[str, Any]]) -> None:
    """Put each served team document's live agents in its ``relationships.agents`` (other
    kinds' documents are left as they are), with one query for them all."""
    teams = [doc for doc in docs if doc["identity"]["entity_type"] == "team"]
    if teams:
        found = live_agents(conn, {doc["identity"]["id"] for doc in teams})
        for doc in teams:
            doc["relationships"][FIELD] = found[doc["identity"]["id"]]


def served(tenant: str, doc: dict[str, Any]) -> dict[str, Any]:
    """A write's response as served: a team's with its live agents (read in a transaction
    of its own, after the write committed)."""
    if doc["identity"]["entity_type"] == "team":
        with database().transaction(tenant) as conn:
            fill(conn, [doc])
    return doc
