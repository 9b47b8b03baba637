"""Similar skills (issue 28): search by meaning and near-duplicate warnings on create.

Vectors are derived data (``skill_embeddings``, written by :mod:`shared.registry.skill_refresh`
only), so a search ranks skills by the vector of their text as of the last refresh: a skill
created or amended since is missing or ranked by its previous text until the next refresh
(docs/architecture.md gives the bound). The query's own text is embedded here, per request;
the model loads on the first similarity request of a process, never on any other route.

The near-duplicate check (``?check_similar=true`` / ``?refuse_similar=true`` on create) is a
warning, not a uniqueness guarantee: two authors creating look-alikes at the same moment both
pass it, and a skill created since the last refresh is not yet compared against.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from shared.errors import Conflict, InvalidQuery, LimitExceeded, NotFound, NotImplementedHere
from shared.integrity import canonical
from shared.registry import documents, membership, reads, skill_vectors, writes
from shared.registry.versions import Document
from shared.rules import inputs, path_params, query_params
from shared.rules.kinds import resolve_kind
from shared.security.principal import READ_ROLES, Principal
from shared.storage import heads, ledger
from shared.storage.engine import database

MAX_QUERY_TEXT = 1000  # characters of similar_to (MiniLM reads 256 tokens at most)
MAX_SIMILAR = 100
DEFAULT_SIMILAR = 10
SIMILAR_QUERY = ("limit", "status", "category")  # /skills/{id}/similar
CREATE_QUERY = ("check_similar", "refuse_similar")  # POST /{kind}
#: Near-duplicates a create reports (``similar``) or refuses with (the 409's ``similar``).
MAX_REPORTED = 10

_unavailable: dict[str, str | None] = {}  # database URL -> why not (None: available)


def require_vectors(conn: Connection) -> None:
    """501 naming the missing extension where this database has no ``skill_embeddings``;
    decided once per process and database (installing pgvector needs a migration and a
    restart anyway)."""
    key = conn.engine.url.render_as_string(hide_password=True)
    if key not in _unavailable:
        _unavailable[key] = skill_vectors.unavailable(conn)
    reason = _unavailable[key]
    if reason is not None:
        raise NotImplementedHere(reason, missing=f"{skill_vectors.EXTENSION} (pgvector)")


def _skills_only(slug: str, field: str) -> None:
    if resolve_kind(slug).type != "skill":
        raise InvalidQuery([{"field": field, "message": "is only taken by skills"}])


def _limit(query: dict[str, str]) -> int:
    limit = query_params.integer(
        query, "limit", minimum=1, maximum=MAX_SIMILAR, default=DEFAULT_SIMILAR
    )
    assert limit is not None
    return limit


def _items(conn: Connection, found: list[skill_vectors.Ranked]) -> list[dict[str, Any]]:
    docs = [documents.served(r.body, r.head.log_index, r.leaf_hash, r.digest) for r in found]
    membership.fill(conn, docs)
    return [
        {"similarity": round(r.similarity, 4), "skill": doc}
        for r, doc in zip(found, docs, strict=True)
    ]


def _answer(items: list[dict[str, Any]]) -> dict[str, Any]:
    from shared.registry.embeddings import MODEL_ID, SIMILAR_THRESHOLD

    return {"items": items, "model_id": MODEL_ID, "threshold": SIMILAR_THRESHOLD}


def search(principal: Principal, slug: str, query: dict[str, str]) -> dict[str, Any]:
    """``GET /registry/skills?similar_to=``: live skills ranked by cosine similarity of their
    text with ``similar_to``, best first, with ``status`` and ``category`` filters."""
    principal.require(*READ_ROLES)
    _skills_only(slug, "similar_to")
    refused = [
        {"field": n, "message": "does not combine with similar_to (one ranked page)"}
        for n in ("q", "tag", "cursor")
        if n in query
    ]
    if refused:
        raise InvalidQuery(refused)
    text = query["similar_to"]
    if not text.strip() or len(text) > MAX_QUERY_TEXT or "\x00" in text:
        raise LimitExceeded(
            f"similar_to must be 1 to {MAX_QUERY_TEXT} characters, not all blank, none NUL",
            field="similar_to",
            limit=MAX_QUERY_TEXT,
        )
    status, category = reads.filters(query)
    limit = _limit(query)
    with database().transaction(principal.tenant) as conn:
        require_vectors(conn)
    from shared.registry import embeddings

    vector = embeddings.embed([text])[0]
    with database().transaction(principal.tenant, snapshot=True) as conn:
        found = skill_vectors.ranked(
            conn, principal.tenant, vector, limit, status=status, category=category
        )
        return _answer(_items(conn, found))


def similar_to_skill(
    principal: Principal, slug: str, raw_id: str, query: dict[str, str]
) -> dict[str, Any]:
    """``GET /registry/skills/{id}/similar``: as :func:`search`, by the skill's own vector
    (its current version's, embedded now if the refresh has not reached it), itself left out."""
    principal.require(*READ_ROLES)
    kind = resolve_kind(slug)
    entity_id = path_params.uuid(raw_id)
    status, category = reads.filters(query)
    limit = _limit(query)
    with database().transaction(principal.tenant) as conn:
        require_vectors(conn)
        head = heads.get(conn, entity_id)
        if head is None or head.kind != kind.type or kind.type != "skill":
            raise NotFound(f"no {kind.type} {entity_id}")
        vector = skill_vectors.vector_of(conn, principal.tenant, entity_id, head.version)
        entry = None if vector is not None else ledger.entry_at(conn, head.log_index)
    if vector is None:
        if entry is None:
            raise Conflict("the entity's current version is missing from the ledger")
        from shared.registry import embeddings

        vector = embeddings.embed([text_of(entry.body)])[0]
    with database().transaction(principal.tenant, snapshot=True) as conn:
        found = skill_vectors.ranked(
            conn,
            principal.tenant,
            vector,
            limit,
            status=status,
            category=category,
            exclude=entity_id,
        )
        return _answer(_items(conn, found))


def text_of(body: bytes) -> str:
    """The embedded text of a stored skill version (``embeddings.skill_text``)."""
    from shared.registry.embeddings import skill_text

    doc = canonical.read(body)
    return skill_text(doc["identity"]["name"], doc["metadata"].get("description"))


def _flag(query: dict[str, str], name: str) -> bool:
    value = query.get(name)
    if value is None:
        return False
    if value not in ("true", "false"):
        raise InvalidQuery([{"field": name, "message": "must be true or false"}])
    return value == "true"


def create(
    principal: Principal, slug: str, body: Any, request_id: str, query: dict[str, str]
) -> tuple[Document, list[dict[str, Any]] | None]:
    """``POST /registry/{kind}``, with the near-duplicate check when the query asks for it.

    Without ``check_similar``/``refuse_similar`` this is ``writes.create`` and nothing more:
    no model, no vector, no extra statement. With either, the new skill's text is embedded
    and compared with the tenant's live skills: those at or above the threshold come back
    (``similar``, best first); with ``refuse_similar`` any of them is a 409 naming them and
    nothing is written. The vector computed is stored for the new skill (one insert after
    the write, outside its transaction), so the next check already sees it."""
    check, refuse = _flag(query, "check_similar"), _flag(query, "refuse_similar")
    if not (check or refuse):
        return writes.create(principal, slug, body, request_id), None
    principal.require("author")
    _skills_only(slug, "refuse_similar" if refuse else "check_similar")
    kind = resolve_kind(slug)
    fields, _, problems = inputs.check_write(kind, body, current=None)
    if problems:  # the create refuses it with its own 422, before any similarity work
        return writes.create(principal, slug, body, request_id), None
    with database().transaction(principal.tenant) as conn:
        require_vectors(conn)
    from shared.registry import embeddings

    vector = embeddings.embed([embeddings.skill_text(fields["name"], fields.get("description"))])[0]
    with database().transaction(principal.tenant, snapshot=True) as conn:
        found = skill_vectors.ranked(conn, principal.tenant, vector, MAX_REPORTED)
        near = [r for r in found if r.similarity >= embeddings.SIMILAR_THRESHOLD]
        similar = _items(conn, near)
    if refuse and similar:
        raise Conflict(
            f"{len(similar)} live skill(s) are at or above cosine similarity "
            f"{embeddings.SIMILAR_THRESHOLD} to this one; nothing was written",
            similar=[
                {
                    "id": i["skill"]["identity"]["id"],
                    "name": i["skill"]["identity"]["name"],
                    "similarity": i["similarity"],
                }
                for i in similar
            ],
        )
    doc = writes.create(principal, slug, body, request_id)
    with database().transaction(principal.tenant) as conn:
        skill_vectors.store(conn, principal.tenant, [(doc.body["identity"]["id"], 1, vector)])
    return doc, similar
