"""The seal's map step (issue 24): bring the map of heads up to date and append its
``map_commit`` entry as the log's last leaf, before the checkpoint is signed over it.

Called by ``sealing.seal_in`` under the tenant's sealing lock, in the seal's transaction.
It first row-locks the log's counter (``log_heads``), so no writer appends until the seal
commits: the commit's ``log_size`` is exactly the index it is appended at, and every head
it reads is the log's below that index. The heads are derived from the log alone (never from
``entity_heads``, a projection a superuser could rewrite): an entity's head after entries
[0, N) is its newest version entry below N (kind, id, version, index, leaf hash, and the
status its body states in ``lifecycle.status``) and, when that status is ``certified``, the
index of its newest certificate entry below N. An entity whose newest version states no
readable status keeps the head it had. ``head_of`` is that rule, shared with the audit.

Only the entities with an entry since the last commit are re-derived: one read of the new
entries (binary COPY), one read of the strata on the changed keys' map paths (``DbMapNodes``:
a level of strata a statement), their update in C (``map_update``), one multi-row upsert of
the strata rewritten, one append.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared.errors import IntegrityViolation
from shared.integrity import digests, heads_map, merkle, sparse_merkle
from shared.storage import copyread, ledger, map_nodes
from shared.tlog import receipts

COMMIT_KIND = "map"
COMMIT_ENTITY = "00000000-0000-0000-0000-000000000000"
COMMIT_ACTOR = "plant-sealer"


def status_of(body: bytes) -> str | None:
    """The status a version's body states (``lifecycle.status``), or None when it states
    none (not JSON, no such member, not a string)."""
    try:
        status = json.loads(body)["lifecycle"]["status"]
    except (ValueError, TypeError, KeyError):
        return None
    return status if isinstance(status, str) else None


def head_of(
    kind: str, entity_id: str, version: int, index: int, leaf: bytes, status: str | None,
    certificate: int | None,
) -> heads_map.Head | None:  # fmt: skip
    """An entity's head from its newest version entry (its status as ``status_of`` read it)
    and newest certificate index, or None when the version states no status or holds a
    value no head can."""
    if status is None:
        return None
    head = heads_map.Head(
        kind, uuid.UUID(entity_id), version, index, leaf, status,
        certificate if status == "certified" else None,
    )  # fmt: skip
    try:
        heads_map.encode_head(head)
    except ValueError:
        return None
    return head


@dataclass(frozen=True)
class Committed:
    """What the map step did: the commit appended, and the heads it set."""

    commit: heads_map.MapCommit
    index: int
    heads: int


_LAST_COMMIT = text(
    "SELECT idx FROM log_entries WHERE tenant_id = current_setting('plant.tenant') "
    "AND entry_type = 'map_commit' ORDER BY idx DESC LIMIT 1"
)
_NEW = (
    "SELECT idx, entry_type, kind, CAST(entity_id AS text), version, leaf_hash, "
    "CASE WHEN entry_type = 'version' THEN body END FROM log_entries "
    "WHERE tenant_id = current_setting('plant.tenant') AND idx >= {start} AND idx < {size} "
    "AND entry_type <> 'map_commit' ORDER BY idx"
)
_NEW_COLUMNS = (
    copyread.INT8, copyread.TEXT, copyread.TEXT, copyread.raw(36), copyread.INT4,
    copyread.raw(32), copyread.BYTEA,
)  # fmt: skip
_NEWEST_VERSION = text(
    "SELECT v.idx, v.kind, CAST(v.entity_id AS text), v.version, v.leaf_hash, v.body "
    "FROM unnest(CAST(:ids AS uuid[])) AS i(id) CROSS JOIN LATERAL (SELECT * FROM log_entries e "
    "WHERE e.tenant_id = current_setting('plant.tenant') AND e.entity_id = i.id "
    "AND e.entry_type = 'version' AND e.idx < :size ORDER BY e.idx DESC LIMIT 1) AS v"
)
_NEWEST_CERTIFICATE = text(  # a row for each entity that has one
    "SELECT CAST(i.id AS text), c.idx FROM unnest(CAST(:ids AS uuid[])) AS i(id) "
    "CROSS JOIN LATERAL (SELECT e.idx FROM log_entries e "
    "WHERE e.tenant_id = current_setting('plant.tenant') AND e.entity_id = i.id "
    "AND e.entry_type = 'certificate' AND e.idx < :size ORDER BY e.idx DESC LIMIT 1) AS c"
)

Version = tuple[int, str, int, bytes, str | None]  # index, kind, version, leaf, status


def changed_heads(conn: Connection, start: int, size: int) -> dict[str, heads_map.Head]:
    """The heads after entries [0, size) of the entities with an entry in [start, size).

    The new entries are read ``copyread.RANGE`` at a time by binary COPY (a first seal of a
    large log reads it all; pg8000's rows were most of a 10,000-entry seal's read), each
    version's status taken from its body as it is read."""
    versions: dict[str, Version] = {}
    certificates: dict[str, int] = {}
    touched: set[str] = set()
    for low in range(start, size, copyread.RANGE):
        high = min(size, low + copyread.RANGE)
        query = _NEW.format(start=copyread.int_literal(low), size=copyread.int_literal(high))
        for rows in copyread.copy_batches(conn, query, _NEW_COLUMNS):
            for idx, entry_type, kind, raw_id, version, leaf, body in rows:
                entity_id = raw_id.decode()
                touched.add(entity_id)
                if entry_type == "certificate":
                    certificates[entity_id] = idx
                elif entry_type == "version":
                    versions[entity_id] = (idx, kind, version, leaf, status_of(body))
    older = sorted(touched - set(versions))
    if older:
        for row in conn.execute(_NEWEST_VERSION, {"ids": older, "size": size}):
            versions[row[2]] = (row[0], row[1], row[3], bytes(row[4]), status_of(bytes(row[5])))
    heads: dict[str, heads_map.Head] = {}
    for entity_id, (idx, kind, version, leaf, status) in versions.items():
        head = head_of(kind, entity_id, version, idx, leaf, status, certificates.get(entity_id))
        if head is not None:
            heads[entity_id] = head
    lookup = sorted(
        e for e, h in heads.items() if h.status == "certified" and e not in certificates
    )
    if lookup:
        for entity_id, cert in conn.execute(_NEWEST_CERTIFICATE, {"ids": lookup, "size": size}):
            head = heads[entity_id]
            heads[entity_id] = heads_map.Head(
                head.kind, head.entity_id, head.version, head.log_index, head.leaf_hash,
                head.status, None if cert is None else int(cert),
            )  # fmt: skip
    return heads


def commit_map(conn: Connection, tenant: str, sealed_size: int) -> Committed | None:
    """Update the map with the heads changed since the last commit and append the new
    commit at the log's end, with its signed write receipt as every entry has
    (``receipts``); None (nothing appended) when the log has nothing new since
    ``sealed_size``, the last checkpoint's size."""
    size = conn.execute(
        text(
            "SELECT size FROM log_heads "
            "WHERE tenant_id = current_setting('plant.tenant') FOR UPDATE"
        )
    ).scalar()
    size = int(size or 0)
    if size <= sealed_size:
        return None
    last = conn.execute(_LAST_COMMIT).scalar()
    start = 0 if last is None else int(last) + 1
    heads = changed_heads(conn, start, size)
    store = map_nodes.DbMapNodes(conn)
    hashed = {h.key: sparse_merkle.value_hash(heads_map.encode_head(h)) for h in heads.values()}
    try:
        root = store.update(hashed)
    except sparse_merkle.MissingNode as exc:  # a node or stratum deleted or unreadable
        raise IntegrityViolation(
            f"the stored map cannot be updated: {exc}", finding="map_invalid"
        ) from exc
    now = datetime.now(UTC).replace(microsecond=0)
    commit = heads_map.MapCommit(size, root, now)
    body = heads_map.encode_commit(commit)
    appended = ledger.append(
        conn,
        entry_type="map_commit",
        kind=COMMIT_KIND,
        entity_id=COMMIT_ENTITY,
        version=1,
        encoded=ledger.Encoded(body, digests.sha256(body), merkle.leaf_hash(body), b""),
        prev_digest=None,
        actor=COMMIT_ACTOR,
    )
    if appended.index != size:
        raise RuntimeError(f"the map commit landed at {appended.index}, not {size}")
    receipts.record(conn, tenant, appended.index, [appended.leaf_hash])
    return Committed(commit, appended.index, len(heads))


def newest_at(
    conn: Connection, entity_ids: list[str], size: int
) -> tuple[dict[str, Version], dict[str, int]]:
    """The newest version (as ``changed_heads`` keeps it) and newest certificate index of
    each of these entities among entries [0, size): what their heads are made of there."""
    if not entity_ids:
        return {}, {}
    # the ids as one array literal (ids as the database prints them): pg8000 escapes a list's
    # items one by one in Python, ~0.1 ms an id (most of the map check of 2,000 new entities)
    asked = {"ids": "{" + ",".join(entity_ids) + "}", "size": size}
    versions: dict[str, Version] = {}
    for row in conn.execute(_NEWEST_VERSION, asked):
        versions[row[2]] = (row[0], row[1], row[3], bytes(row[4]), status_of(bytes(row[5])))
    certificates = {
        entity_id: int(cert) for entity_id, cert in conn.execute(_NEWEST_CERTIFICATE, asked)
    }
    return versions, certificates
