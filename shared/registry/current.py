"""The proof of an entity's current version (issue 24): ``GET /registry/{kind}/{id}/proof/current``.

Everything comes from one REPEATABLE READ snapshot: the latest signed checkpoint, whose last
leaf (index size - 1) is the seal's ``map_commit``; that entry and its inclusion proof; the
map proof of the entity's key from the stored map nodes (which the same seal wrote); the
head value the map holds for it (derived from the log below the commit, as the seal did);
the current version's entry and the certificate's, each with its inclusion proof. An id
never registered (or registered after the last seal) gets the same document with ``head``
null: a proof of absence. ``shared.evidence.current`` verifies it offline; docs/formats.md
spells it out.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.engine import Connection

from shared.errors import IntegrityViolation, NotFound
from shared.integrity import digests, heads_map, merkle, sparse_merkle
from shared.rules import path_params
from shared.rules.kinds import resolve_kind
from shared.security.principal import READ_ROLES, Principal
from shared.storage import ledger, map_nodes, tree
from shared.storage.engine import database
from shared.tlog import map_commit

FORMAT = "plant-current-proof/1"


def _entry(index: int, body: bytes, proof: list[bytes]) -> dict[str, Any]:
    return {"index": index, "entry": digests.b64(body), "proof": [digests.b64(h) for h in proof]}


def current_proof(principal: Principal, slug: str, raw_id: str) -> dict[str, Any]:
    """The proof document (see the module's docstring); 404 before the first seal, or when
    the map holds the id under another kind."""
    principal.require(*READ_ROLES)
    kind = resolve_kind(slug)
    entity_id = path_params.uuid(raw_id)
    with database().transaction(principal.tenant, snapshot=True) as conn:
        last = tree.latest_checkpoint(conn)
        if last is None:
            raise NotFound("the log has no checkpoint yet (POST /log/seal)")
        return document(conn, principal.tenant, last, entity_id, kind.type)


def document(
    conn: Connection,
    tenant: str,
    last: tree.StoredCheckpoint,
    entity_id: str,
    kind: str | None = None,
) -> dict[str, Any]:
    """The proof of one entity against checkpoint ``last``, read in the caller's snapshot
    (``kind`` None: whatever kind the map holds, for an evidence bundle)."""
    commit_entry = ledger.entry_at(conn, last.size - 1)
    if commit_entry is None or commit_entry.entry_type != "map_commit":
        raise IntegrityViolation(
            f"the checkpoint of size {last.size} does not end with a map commit",
            finding="map_invalid",
            log_index=last.size - 1,
        )
    head = map_commit.head_at(conn, entity_id, last.size - 1)
    if head is not None and kind is not None and head.kind != kind:
        raise NotFound(f"no {kind} {entity_id}")
    try:
        proof = sparse_merkle.prove(
            map_nodes.DbMapNodes(conn), heads_map.entity_key(uuid.UUID(entity_id))
        )
    except sparse_merkle.MissingNode as exc:
        raise IntegrityViolation(f"the stored map: {exc}", finding="map_invalid") from exc
    indices = [last.size - 1]
    if head is not None:
        indices.append(head.log_index)
        if head.certificate_index is not None:
            indices.append(head.certificate_index)
    paths = merkle.inclusion_proofs(tree.DbNodes(conn), indices, last.size)
    bodies = [commit_entry.body] + [_body(conn, i) for i in indices[1:]]
    entries = [_entry(i, b, p) for i, b, p in zip(indices, bodies, paths, strict=True)]
    return {
        "format": FORMAT,
        "tenant": tenant,
        "kind": kind if head is None else head.kind,
        "entity_id": entity_id,
        "checkpoint": last.note,
        "map_commit": entries[0],
        "map_proof": heads_map.proof_to_json(proof),
        "head": None if head is None else digests.b64(heads_map.encode_head(head)),
        "version": entries[1] if len(entries) > 1 else None,
        "certificate": entries[2] if len(entries) > 2 else None,
    }


def _body(conn: Connection, index: int) -> bytes:
    found = ledger.entry_at(conn, index)
    if found is None:
        raise IntegrityViolation(f"log entry {index} is missing", finding="missing")
    return found.body
