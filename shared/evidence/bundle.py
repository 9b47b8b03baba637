"""Evidence bundles: everything an auditor needs to check a tenant's log offline.

Format ``plant-evidence-bundle/3``, one JSON document::

    {"format", "tenant", "origin", "created_at",
     "checkpoint": {"note", "size", "root"},          # latest signed checkpoint
     "public_keys": [vkey, ...],                     # C2SP vkeys of the signing keyring
     "previous_checkpoint": {"note", "size", "root", "consistency_proof": [...]} | null,
     "filters": {"kind": entity type | null, "entity": entity id | null},
     "entries": [{"index", "entry_type", "entity_type", "entity_id", "version",
                  "body", "leaf_hash", "inclusion_proof": [...], "receipt"}, ...],
     "current_proofs": [proof, ...] | null,         # issue 24, one per selected entity
     "statement": DSSE envelope}                     # see bundle_statement.py

Hashes and bodies are base64; ``body`` is the exact canonical bytes that were hashed. The
previous checkpoint is the one the latest completed audit verified, with the consistency
proof from it to the latest checkpoint. Entries are every version and certificate of the
selected entities (all entities by default) below the checkpoint size, in log order. The
statement, written last so the bundle streams, signs the header and the list of entries
(a running count and SHA-256 of them), so a bundle holds one batch of entries at a time.
Each entry's ``receipt`` is its write receipt's JSON (``shared.integrity.receipts``; null
when the log holds none, which the verifier refuses). Map commits (entry_type
``map_commit``, entity_type ``map``) and audit reports (entry_type ``audit``) are entries
like any other in an unfiltered bundle. ``current_proofs`` holds the current-version proof
(``shared.registry.current``, format ``plant-current-proof/1``) of each selected entity
against the bundle's checkpoint, or null when the bundle selects more than ``MAX_CURRENT``
entities. Format 2 (no receipts, no current proofs) is still verified, and the verifier says
what it cannot prove; format 1 (before the statement) is refused: nothing in it said what it
held.
"""

from __future__ import annotations

import base64
import bisect
from collections.abc import Iterator
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared import tlog
from shared.errors import InvalidQuery, NotFound
from shared.evidence import statement as bundle_statement
from shared.integrity import digests, merkle, receipts
from shared.integrity.canonical import now_text
from shared.registry import current
from shared.rules.kinds import KINDS, parse_uuid
from shared.security.principal import Principal
from shared.storage import cosignatures, receipt_rows, tree
from shared.storage.engine import database
from shared.tlog import keys
from shared.tlog import receipts as tlog_receipts

FORMAT = "plant-evidence-bundle/3"
BATCH = 500
MAX_CURRENT = 1000  # entities a bundle carries current proofs of (more: it carries none)


class CurrentProofs(list[dict[str, Any]]):
    """The bundle's last part: its entities' current proofs, or None past MAX_CURRENT."""

    def __init__(self, proofs: list[dict[str, Any]] | None) -> None:
        super().__init__(proofs or [])
        self.value = proofs


def _current(
    conn: Connection, tenant: str, latest: tree.StoredCheckpoint, kind: str | None,
    entity: str | None,
) -> CurrentProofs:  # fmt: skip
    """The current proof of each entity the bundle selects, against its checkpoint."""
    ids = (
        conn.execute(
            text(
                "SELECT CAST(entity_id AS text) FROM entity_heads "
                "WHERE (CAST(:kind AS text) IS NULL OR kind = :kind) "
                "AND (CAST(:entity AS text) IS NULL OR entity_id = CAST(:entity AS uuid)) "
                "ORDER BY entity_id LIMIT :limit"
            ),
            {"kind": kind, "entity": entity, "limit": MAX_CURRENT + 1},
        )
        .scalars()
        .all()
    )
    if len(ids) > MAX_CURRENT:
        return CurrentProofs(None)
    return CurrentProofs([current.document(conn, tenant, latest, e) for e in ids])


QUERY = ("kind", "entity")  # the query parameters the bundle takes


def _filters(query: dict[str, str]) -> tuple[str | None, str | None]:
    """The bundle's filters; a value it does not take is a 422 naming each one (the Router
    refuses a parameter outside QUERY before)."""
    errors: list[dict[str, str]] = []
    slug = query.get("kind") or None
    if slug is not None and slug not in KINDS:
        errors.append({"field": "kind", "message": f"must be one of {sorted(KINDS)}"})
    entity = query.get("entity") or None
    if entity is not None and parse_uuid(entity) is None:
        errors.append({"field": "entity", "message": "must be a UUID"})
    if errors:
        raise InvalidQuery(errors)
    return (KINDS[slug].type if slug else None), (parse_uuid(entity) if entity else None)


def _previous(conn: Connection, latest: tree.StoredCheckpoint) -> dict[str, Any] | None:
    size = conn.execute(
        text(
            "SELECT checkpoint_size FROM audit_runs WHERE status = 'completed' "
            "AND checkpoint_size > 0 ORDER BY finished_at DESC LIMIT 1"
        )
    ).scalar()
    if size is None or int(size) >= latest.size:
        return None
    stored = tree.checkpoint_at(conn, int(size))
    if stored is None:
        return None
    proof = merkle.consistency_proof(tree.DbNodes(conn), stored.size, latest.size)
    return {
        "note": stored.note,
        "size": stored.size,
        "root": digests.b64(stored.root),
        "consistency_proof": [digests.b64(h) for h in proof],
    }


def _entries(
    conn: Connection, size: int, kind: str | None, entity: str | None
) -> Iterator[dict[str, Any]]:
    """Selected entries below ``size``, each with its inclusion proof, a batch at a time.

    Nothing outlives its batch: the proofs are read from the stored subtrees, one query a
    batch, so the memory is one batch's (its proofs a hash longer each time the log doubles)
    whatever the log's size.
    """
    reader = tree.DbNodes(conn)
    receipts = _Receipts(conn)
    after = -1
    while True:
        rows = conn.execute(
            text(
                "SELECT e.idx, e.entry_type, e.kind, CAST(e.entity_id AS text), e.version, e.body, "
                "e.leaf_hash FROM log_entries e WHERE e.idx > :after AND e.idx < :size "
                "AND (CAST(:kind AS text) IS NULL OR e.kind = :kind) "
                "AND (CAST(:entity AS text) IS NULL OR e.entity_id = CAST(:entity AS uuid)) "
                "ORDER BY e.idx LIMIT :limit"
            ),
            {"after": after, "size": size, "kind": kind, "entity": entity, "limit": BATCH},
        ).all()
        proofs = merkle.inclusion_proofs(reader, [int(row[0]) for row in rows], size)
        held = receipts.of([int(row[0]) for row in rows])
        for (idx, entry_type, k, entity_id, version, body, leaf), proof in zip(
            rows, proofs, strict=True
        ):
            yield {
                "index": int(idx),
                "entry_type": entry_type,
                "entity_type": k,
                "entity_id": entity_id,
                "version": int(version),
                "body": digests.b64(bytes(body)),
                "leaf_hash": digests.b64(bytes(leaf)),
                "inclusion_proof": [digests.b64(h) for h in proof],
                "receipt": held[int(idx)].to_json() if int(idx) in held else None,
            }
        if len(rows) < BATCH:
            return
        after = int(rows[-1][0])


class _Receipts:
    """Entries' receipts a batch of indices at a time; the rows covering the batch are read
    once and kept (with a batch's tree) only while later batches still fall in them."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.rows: dict[int, tlog_receipts.RowReceipts] = {}  # by first index

    def of(self, indices: list[int]) -> dict[int, receipts.AnyReceipt]:
        if not indices:
            return {}
        low, high = indices[0], indices[-1] + 1
        rows = receipt_rows.covering(self.conn, low, high)
        self.rows = {r.first: self.rows.get(r.first) or tlog_receipts.RowReceipts(r) for r in rows}
        out: dict[int, receipts.AnyReceipt] = {}
        firsts = sorted(self.rows)
        for index in indices:
            at = bisect.bisect_right(firsts, index) - 1
            receipt = self.rows[firsts[at]].at(index) if at >= 0 else None
            if receipt is not None:
                out[index] = receipt
        return out


def build(principal: Principal, query: dict[str, str]) -> Iterator[Any]:
    """Seal, then yield the bundle's header (a dict), each entry (a dict), then its current
    proofs (``CurrentProofs``), for streaming or collecting."""
    principal.require("auditor")
    kind, entity = _filters(query)
    tlog.seal(principal.tenant)
    with database().transaction(principal.tenant, snapshot=True) as conn:
        latest = tree.latest_checkpoint(conn)
        if latest is None:
            raise NotFound("the log is empty: nothing to bundle")
        latest = cosignatures.cosigned(conn, latest)  # witnesses' lines, for --quorum
        if (
            entity is not None
            and not conn.execute(
                text("SELECT 1 FROM entity_heads WHERE entity_id = CAST(:e AS uuid)"), {"e": entity}
            ).first()
        ):
            raise NotFound(f"no entity {entity}")
        yield {
            "format": FORMAT,
            "tenant": principal.tenant,
            "origin": tlog.origin(principal.tenant),
            "created_at": now_text(),
            "checkpoint": {
                "note": latest.note,
                "size": latest.size,
                "root": digests.b64(latest.root),
            },
            "public_keys": keys.keyring().vkeys,
            "previous_checkpoint": _previous(conn, latest),
            "filters": {"kind": kind, "entity": entity},
        }
        yield from _entries(conn, latest.size, kind, entity)
        yield _current(conn, principal.tenant, latest, kind, entity)


def json_chunks(parts: Iterator[Any]) -> Iterator[bytes]:
    """The bundle as one JSON document, written an entry at a time, closed by its statement."""
    import json

    head = next(parts)
    coverage = bundle_statement.Coverage()
    opening = json.dumps(head)[:-1] + ',"entries":['
    yield opening.encode()
    proofs = None
    for i, entry in enumerate(parts):
        if isinstance(entry, CurrentProofs):
            proofs = entry.value
            continue
        coverage.add(entry["index"], base64.b64decode(entry["leaf_hash"]))
        yield (b"," if i else b"") + json.dumps(entry).encode()
    statement = bundle_statement.sign(head, coverage, keys.keyring().active)
    yield b'],"current_proofs":' + json.dumps(proofs).encode()
    yield b',"statement":' + json.dumps(statement).encode() + b"}"
