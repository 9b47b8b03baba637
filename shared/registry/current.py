"""The proof of an entity's current version (issue 24): ``GET /registry/{kind}/{id}/proof/current``.

Everything comes from one statement, hence one snapshot (``storage.proof_reads``, one round
trip on an autocommit connection): the latest signed checkpoint, whose last leaf (index
size - 1) is the seal's ``map_commit``; that entry; the stored map nodes on the entity's key
path (which the same seal wrote); the entity's newest version and certificate entries below
the commit; and the log nodes of the inclusion paths. From those bytes this module computes
the document: the commit with its inclusion proof, the map proof of the entity's key, the
head value the map holds for it (derived from the log below the commit, as the seal did,
``map_commit.head_of``), the current version's entry and the certificate's, each with its
inclusion proof. An id never registered (or registered after the last seal) gets the same
document with ``head`` null: a proof of absence. ``shared.evidence.current`` verifies it
offline; docs/formats.md spells it out.
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
from shared.storage import proof_reads, tree
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
    with database().autocommit() as conn:
        parts = proof_reads.current_parts(conn, principal.tenant, entity_id, None)
    if parts is None:
        raise NotFound("the log has no checkpoint yet (POST /log/seal)")
    return _document(principal.tenant, parts, parts.note, entity_id, kind.type)


def document(
    conn: Connection,
    tenant: str,
    last: tree.StoredCheckpoint,
    entity_id: str,
    kind: str | None = None,
) -> dict[str, Any]:
    """The proof of one entity against checkpoint ``last``, read in the caller's snapshot
    (``kind`` None: whatever kind the map holds, for an evidence bundle); its note is
    ``last``'s as given (a bundle's carries the witnesses' cosignatures)."""
    parts = proof_reads.current_parts(conn, tenant, entity_id, last.size)
    if parts is None:
        raise NotFound(f"no checkpoint of size {last.size}")
    return _document(tenant, parts, last.note, entity_id, kind)


def _head(parts: proof_reads.CurrentParts, entity_id: str) -> heads_map.Head | None:
    """The entity's head after entries [0, size - 1), as the commit at size - 1 holds it:
    its newest version below the commit and, when that states ``certified``, its newest
    certificate below it (the seal's rule, ``map_commit.head_of``)."""
    found = parts.version
    if found is None:
        return None
    status = map_commit.status_of(found.body)
    certificate = None
    if status == "certified" and parts.certificate is not None:
        certificate = parts.certificate[0]
    return map_commit.head_of(
        found.kind, entity_id, found.version, found.index, found.leaf_hash, status, certificate
    )


def _document(
    tenant: str, parts: proof_reads.CurrentParts, note: str, entity_id: str, kind: str | None
) -> dict[str, Any]:
    size = parts.size
    if parts.commit is None or parts.commit[0] != "map_commit":
        raise IntegrityViolation(
            f"the checkpoint of size {size} does not end with a map commit",
            finding="map_invalid",
            log_index=size - 1,
        )
    head = _head(parts, entity_id)
    if head is not None and kind is not None and head.kind != kind:
        raise NotFound(f"no {kind} {entity_id}")
    nodes = proof_reads.ReadNodes(parts)
    try:
        proof = sparse_merkle.prove(nodes, heads_map.entity_key(uuid.UUID(entity_id)))
    except sparse_merkle.MissingNode as exc:
        raise IntegrityViolation(f"the stored map: {exc}", finding="map_invalid") from exc
    indices = [size - 1]
    bodies = [parts.commit[1]]
    if head is not None:
        assert parts.version is not None  # a head is read from the version entry
        indices.append(head.log_index)
        bodies.append(parts.version.body)
        if head.certificate_index is not None:
            assert parts.certificate is not None
            indices.append(head.certificate_index)
            bodies.append(parts.certificate[1])
    paths = merkle.inclusion_proofs(nodes, indices, size)
    entries = [_entry(i, b, p) for i, b, p in zip(indices, bodies, paths, strict=True)]
    return {
        "format": FORMAT,
        "tenant": tenant,
        "kind": kind if head is None else head.kind,
        "entity_id": entity_id,
        "checkpoint": note,
        "map_commit": entries[0],
        "map_proof": heads_map.proof_to_json(proof),
        "head": None if head is None else digests.b64(heads_map.encode_head(head)),
        "version": entries[1] if len(entries) > 1 else None,
        "certificate": entries[2] if len(entries) > 2 else None,
    }
