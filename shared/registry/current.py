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

What every proof against one checkpoint shares (its note, the commit entry with its
inclusion proof, the log's right-edge subtrees and its narrow upper levels, the map's top two
levels of strata) is immutable once signed, so the route keeps it per process (``_FIXED``)
and tells the statement which checkpoint it holds: the statement still reads the latest
checkpoint, and when that is a newer one it sends the fixed parts again (one read per seal),
so no proof is ever served against an older checkpoint than the latest, nor with a stratum
held from one. Like ``tree.CachedNodes``, only for proofs served to clients, who verify them;
audits read the database itself.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from shared.errors import IntegrityViolation, NotFound
from shared.integrity import digests, heads_map, merkle, sparse_merkle
from shared.rules import path_params
from shared.rules.kinds import resolve_kind
from shared.security.principal import READ_ROLES, Principal
from shared.storage import map_strata, proof_reads, proof_reply, tree
from shared.storage.engine import database
from shared.tlog import map_commit

FORMAT = "plant-current-proof/1"


@dataclass(frozen=True)
class Fixed:
    """The parts of every proof against the checkpoint of ``size``: its note, the entry at
    size - 1 with its inclusion proof (as the document holds it), the log nodes held and the
    map's strata of its top ``proof_reads.HELD_STRATA`` levels (``strata``, of ``weight``
    bytes)."""

    size: int
    note: str
    commit: tuple[str, bytes]
    commit_entry: dict[str, Any]
    nodes: dict[tree.Key, bytes]
    strata: map_strata.Strata
    weight: int


_FIXED: dict[str, Fixed] = {}  # by database and tenant
_FIXED_SCOPES = 256  # tenants held at most; the oldest goes first
_FIXED_BYTES = 64 << 20  # their strata's bytes at most (4.3 MB for a map of 1,000,000)
_FIXED_LOCK = threading.Lock()  # for the writers (once per seal and tenant); reads need none


def _entry(index: int, body: bytes, proof: list[bytes]) -> dict[str, Any]:
    return {"index": index, "entry": digests.b64(body), "proof": [digests.b64(h) for h in proof]}


def current_proof(principal: Principal, slug: str, raw_id: str) -> dict[str, Any]:
    """The proof document (see the module's docstring); 404 before the first seal, or when
    the map holds the id under another kind."""
    principal.require(*READ_ROLES)
    kind = resolve_kind(slug)
    entity_id = path_params.uuid(raw_id)
    db = database()
    scope = f"{db.engine.url.database}/{principal.tenant}"
    fixed = _FIXED.get(scope)
    strata = proof_reads.HELD_STRATA
    start = 0
    if fixed is not None:
        start = proof_reads.start_below(heads_map.entity_key(uuid.UUID(entity_id)), fixed.strata)
    with db.autocommit() as conn:
        try:
            parts = proof_reads.current_parts(
                conn, principal.tenant, entity_id, None, fixed.size if fixed else 0, strata, start
            )
            if parts is not None and parts.held and not _unchanged(parts, fixed):
                # rewritten since it was held: what is stored now decides, as without holding
                parts = proof_reads.current_parts(
                    conn, principal.tenant, entity_id, None, 0, strata
                )
        except proof_reply.MalformedReply as exc:  # the database's function answered wrong
            raise IntegrityViolation(f"the proof's parts as the database sent them: {exc}") from exc
    if parts is None:
        raise NotFound("the log has no checkpoint yet (POST /log/seal)")
    if parts.held:
        return _document(principal.tenant, parts, parts.note, entity_id, kind.type, fixed)
    doc = _document(principal.tenant, parts, parts.note, entity_id, kind.type)
    _hold(scope, parts, {**doc["map_commit"], "proof": list(doc["map_commit"]["proof"])})
    return doc


def _unchanged(parts: proof_reply.CurrentParts, fixed: Fixed | None) -> bool:
    """Whether the note and commit entry read are those held (the statement says ``held``
    only for the size it was sent, so ``fixed`` is that checkpoint's)."""
    assert fixed is not None and fixed.size == parts.size
    return (parts.note, parts.commit) == (fixed.note, fixed.commit)


def _hold(scope: str, parts: proof_reply.CurrentParts, commit_entry: dict[str, Any]) -> None:
    """Keep the fixed parts of ``parts``' checkpoint: the levels from ``parts.top`` up whole,
    below it the right edge's subtrees and the commit's siblings, and the map's strata sent
    whole (the oldest scopes go while those held weigh more than ``_FIXED_BYTES``)."""
    size, top = parts.size, parts.top
    assert parts.commit is not None  # _document checked it
    low = {(lv, (size >> lv) - 1) for lv in range(top) if (size >> lv) & 1}
    low.update((lv, ((size - 1) >> lv) ^ 1) for lv in range(top))
    nodes = {k: v for k, v in parts.log_nodes.items() if k[0] >= top or k in low}
    try:
        strata = proof_reply.held_strata(parts.whole_strata, proof_reads.HELD_STRATA)
    except map_strata.MalformedStratum:
        return  # not held: each proof reads every part, and a path through it is refused
    weight = len(parts.whole_strata)
    with _FIXED_LOCK:
        _FIXED.pop(scope, None)
        _FIXED[scope] = Fixed(size, parts.note, parts.commit, commit_entry, nodes, strata, weight)
        while len(_FIXED) > _FIXED_SCOPES or (
            len(_FIXED) > 1 and sum(f.weight for f in _FIXED.values()) > _FIXED_BYTES
        ):
            del _FIXED[next(iter(_FIXED))]


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


def _head(parts: proof_reply.CurrentParts, entity_id: str) -> heads_map.Head | None:
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
    tenant: str,
    parts: proof_reply.CurrentParts,
    note: str,
    entity_id: str,
    kind: str | None,
    fixed: Fixed | None = None,
) -> dict[str, Any]:
    """The document from ``parts``, with ``fixed``'s commit entry and nodes when the
    statement omitted them (``parts.held``)."""
    size = parts.size
    commit = parts.commit if fixed is None else fixed.commit
    if commit is None or commit[0] != "map_commit":
        raise IntegrityViolation(
            f"the checkpoint of size {size} does not end with a map commit",
            finding="map_invalid",
            log_index=size - 1,
        )
    head = _head(parts, entity_id)
    if head is not None and kind is not None and head.kind != kind:
        raise NotFound(f"no {kind} {entity_id}")
    if fixed is None:
        nodes = proof_reads.ReadNodes(parts)
    else:
        nodes = proof_reads.ReadNodes(parts, fixed.nodes, fixed.strata)
    try:
        proof = sparse_merkle.prove(nodes, parts.key)
    except sparse_merkle.MissingNode as exc:
        raise IntegrityViolation(f"the stored map: {exc}", finding="map_invalid") from exc
    indices = [size - 1]
    bodies = [commit[1]]
    if head is not None:
        assert parts.version is not None  # a head is read from the version entry
        indices.append(head.log_index)
        bodies.append(parts.version.body)
        if head.certificate_index is not None:
            assert parts.certificate is not None
            indices.append(head.certificate_index)
            bodies.append(parts.certificate[1])
    if fixed is not None:  # the commit's entry as computed when the checkpoint was first read
        indices, bodies = indices[1:], bodies[1:]
    paths = merkle.inclusion_proofs(nodes, indices, size)
    entries = [_entry(i, b, p) for i, b, p in zip(indices, bodies, paths, strict=True)]
    if fixed is not None:
        entries.insert(0, {**fixed.commit_entry, "proof": list(fixed.commit_entry["proof"])})
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
