"""The append-only ledger: one row per leaf of a tenant's Merkle log.

``append`` takes the tenant's next index and inserts the row in one statement: the increment
of ``log_heads`` row-locks the tenant's counter until the transaction ends, so concurrent
writers get contiguous indices with no gap and no duplicate (a rolled-back writer releases
its index with its transaction).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared.storage import direct, staging

_APPEND = text(
    """
WITH seq AS (
  INSERT INTO log_heads AS h (tenant_id, size)
  VALUES (current_setting('plant.tenant'), 1)
  ON CONFLICT (tenant_id) DO UPDATE SET size = h.size + 1
  RETURNING h.size - 1 AS idx
)
INSERT INTO log_entries (tenant_id, idx, entry_type, kind, entity_id, version, body, digest,
                         leaf_hash, prev_digest, field_hashes, actor)
SELECT current_setting('plant.tenant'), seq.idx, :entry_type, :kind, CAST(:entity_id AS uuid),
       :version, :body, :digest, :leaf_hash, :prev_digest, :field_hashes, :actor
FROM seq
RETURNING idx
"""
)


@dataclass(frozen=True, slots=True)
class Encoded:
    """A document's stored form: canonical bytes, their digest and the packed section and
    field digests (``shared.integrity.digests``)."""

    body: bytes
    digest: bytes
    leaf_hash: bytes
    field_hashes: bytes


@dataclass(frozen=True)
class Appended:
    index: int
    leaf_hash: bytes
    digest: bytes


def append(
    conn: Connection,
    *,
    entry_type: str,
    kind: str,
    entity_id: str,
    version: int,
    encoded: Encoded,
    prev_digest: bytes | None,
    actor: str,
) -> Appended:
    """Append one entry to the current tenant's log and return its index."""
    params = _entry_params(kind, entity_id, version, encoded, prev_digest, actor)
    index = conn.execute(_APPEND, {**params, "entry_type": entry_type}).scalar_one()
    return Appended(index=index, leaf_hash=encoded.leaf_hash, digest=encoded.digest)


def _entry_params(
    kind: str,
    entity_id: str,
    version: int,
    encoded: Encoded,
    prev_digest: bytes | None,
    actor: str,
) -> dict[str, Any]:
    """The bind parameters of one log entry's columns."""
    return {
        "kind": kind,
        "entity_id": entity_id,
        "version": version,
        "body": encoded.body,
        "digest": encoded.digest,
        "leaf_hash": encoded.leaf_hash,
        "prev_digest": prev_digest,
        "field_hashes": encoded.field_hashes,
        "actor": actor,
    }


def _pins(pins: dict[str, int]) -> dict[str, list[Any]]:
    """Pinned references as the two parallel arrays the functions take, in id order."""
    pinned = sorted(pins.items())
    return {"refs": [ref for ref, _ in pinned], "ref_indices": [index for _, index in pinned]}


# Run as the driver's own text with positional values on its own cursor (``direct``): the
# hottest statement skips SQLAlchemy's compilation, its mapping of 19 named values and its
# execution context.
_APPEND_VERSION = (
    "SELECT plant_append_version(%s, %s, CAST(%s AS uuid), %s, %s, %s, %s, %s, %s, %s, %s, "
    "%s, %s, %s, %s, CAST(%s AS timestamptz), %s, CAST(%s AS uuid[]), CAST(%s AS bigint[]))"
)


@dataclass(frozen=True)
class HeadMove:
    """What a new version does to its entity's head, and what the writer read before it."""

    status: str
    name: str
    category: str | None
    unique_key: str | None
    check_unique: bool
    at: str
    expect_index: int | None  # the head's log index the caller read (None: a new entity)
    pins: dict[str, int]  # referenced entity id -> the log index the caller checked


def append_version(conn: Connection, new: NewVersion) -> Appended:
    """Append a version and move the head in one statement (``plant_append_version``).

    Run alone on an autocommit connection it is one round trip and its own transaction; in
    an open transaction it joins it. A head or reference that moved since the caller read it
    raises SQLSTATE 40001, so ``retry_transient`` re-runs the whole operation.
    """
    move, encoded = new.move, new.encoded
    pins = _pins(move.pins)
    index = direct.scalar_one(
        conn,
        _APPEND_VERSION,
        (
            new.tenant,
            new.kind,
            new.entity_id,
            new.version,
            encoded.body,
            encoded.digest,
            encoded.leaf_hash,
            new.prev_digest,
            encoded.field_hashes,
            new.actor,
            move.status,
            move.name,
            move.category,
            move.unique_key,
            move.check_unique,
            move.at,
            move.expect_index,
            pins["refs"],
            pins["ref_indices"],
        ),
    )
    return Appended(index=index, leaf_hash=encoded.leaf_hash, digest=encoded.digest)


MAX_GROUP = 64  # items per plant_append_versions statement (see migration 0005)

_APPEND_VERSIONS = text("SELECT item, log_index FROM plant_append_versions(CAST(:items AS jsonb))")


@dataclass(frozen=True)
class NewVersion:
    """One version to append: alone (``append_version``) or in a group (``append_versions``)."""

    tenant: str
    kind: str
    entity_id: str
    version: int
    encoded: Encoded
    prev_digest: bytes | None
    actor: str
    move: HeadMove

    def item(self) -> list[Any]:
        """This version as one item of ``plant_append_versions``."""
        move = self.move
        return [
            self.tenant,
            self.kind,
            self.entity_id,
            self.version,
            self.encoded.body.hex(),
            self.encoded.digest.hex(),
            self.encoded.leaf_hash.hex(),
            None if self.prev_digest is None else self.prev_digest.hex(),
            self.encoded.field_hashes.hex(),
            self.actor,
            move.status,
            move.name,
            move.category,
            move.unique_key,
            move.check_unique,
            move.at,
            move.expect_index,
            move.pins,
        ]


def append_versions(conn: Connection, group: Sequence[NewVersion]) -> list[int | None]:
    """Append several writers' versions in one statement (``plant_append_versions``): the
    index of each, or None for one that ``append_version`` would refuse (nothing of it is
    written; its writer re-runs it alone to learn why)."""
    if not 0 < len(group) <= MAX_GROUP:
        raise ValueError(f"a group holds 1 to {MAX_GROUP} versions")
    rows = conn.execute(
        _APPEND_VERSIONS, {"items": json.dumps([new.item() for new in group])}
    ).all()
    indices: list[int | None] = [None] * len(group)
    for item, index in rows:
        indices[item - 1] = index
    return indices


_APPEND_ALL = text(
    """
SELECT b.ord, plant_append_version(
    b.e->>0, b.e->>1, CAST(b.e->>2 AS uuid), CAST(b.e->>3 AS integer),
    decode(b.e->>4, 'hex'), decode(b.e->>5, 'hex'), decode(b.e->>6, 'hex'),
    decode(b.e->>7, 'hex'), decode(b.e->>8, 'hex'), b.e->>9, b.e->>10, b.e->>11, b.e->>12,
    b.e->>13, CAST(b.e->>14 AS boolean), CAST(b.e->>15 AS timestamptz),
    CAST(b.e->>16 AS bigint),
    ARRAY(SELECT CAST(p.key AS uuid) FROM jsonb_each_text(b.e->17) AS p ORDER BY p.key),
    ARRAY(SELECT CAST(p.value AS bigint) FROM jsonb_each_text(b.e->17) AS p ORDER BY p.key))
FROM jsonb_array_elements(CAST(:items AS jsonb)) WITH ORDINALITY AS b(e, ord)
ORDER BY b.ord
"""
)


def append_all(conn: Connection, versions: Sequence[NewVersion]) -> list[int]:
    """Append versions in order in the caller's transaction, in one statement, all or
    nothing: ``plant_append_version`` for each (no savepoints, so any refusal aborts the
    transaction). The caller locks every head they move first (in id order): the counter,
    which the first item takes, is then never held while waiting for a head."""
    rows = conn.execute(_APPEND_ALL, {"items": json.dumps([new.item() for new in versions])}).all()
    return [index for _, index in sorted(rows)]


def lock_heads(conn: Connection, entity_ids: Iterable[str]) -> dict[str, int]:
    """Row-lock heads for update, in id order; returns each one's current log index."""
    rows = conn.execute(
        text(
            "SELECT CAST(entity_id AS text), log_index FROM entity_heads "
            "WHERE entity_id = ANY(CAST(:ids AS uuid[])) ORDER BY entity_id FOR UPDATE"
        ),
        {"ids": sorted(entity_ids)},
    ).all()
    return {r[0]: r[1] for r in rows}


_ITEMS = text(
    "CREATE TEMPORARY TABLE plant_items (ord integer PRIMARY KEY, entity_id uuid NOT NULL, "
    "name text NOT NULL, category text, unique_key text, tags text[] NOT NULL) ON COMMIT DROP"
)
_ITEM_COLUMNS = ("ord", "entity_id", "name", "category", "unique_key", "tags")
_STAGE = text(
    "CREATE TEMPORARY TABLE plant_staged (ord integer NOT NULL, body bytea NOT NULL, "
    "digest bytea NOT NULL, leaf_hash bytea NOT NULL, field_hashes bytea NOT NULL) "
    "ON COMMIT DROP"
)
_STAGED_COLUMNS = ("ord", "body", "digest", "leaf_hash", "field_hashes")
_OPEN = text(
    "SELECT plant_batch_open(:tenant, :count, CAST(:refs AS uuid[]), "
    "CAST(:ref_indices AS bigint[]))"
)
_CHECK_ITEMS = text(
    "SELECT item, CAST(holder AS text), holder_name FROM plant_batch_items(:tenant, :kind, :first)"
)
_APPEND_STAGED = text(
    "SELECT plant_batch_append(:tenant, :kind, :actor, CAST(:at AS timestamptz), :first)"
)
_CLOSE = text("SELECT plant_batch_close(:tenant, :first, :count)")
CHUNK = 2000  # items per COPY: big enough to amortise its round trips, small enough to overlap
YIELD_EVERY = 64  # items: the encoding thread lets the sending one run this often


@dataclass(frozen=True, slots=True)
class NewItem:
    """What a batch item is before its document is encoded: its id, its head's columns and
    its tags (the body's ``metadata.tags``)."""

    entity_id: uuid.UUID
    name: str
    category: str | None
    unique_key: str | None
    tags: Sequence[str]


class KeysTaken(Exception):
    """Items of a batch whose unique key a live entity (or an earlier item) holds: per item,
    its place in the batch, the holder's id and the holder's name. Nothing was written."""

    def __init__(self, taken: list[tuple[int, str, str]]) -> None:
        super().__init__(f"{len(taken)} items hold a taken unique key")
        self.taken = taken


def _item_row(ord_: int, item: NewItem) -> bytes:
    return staging.row(
        (
            staging.int4(ord_),
            staging.field(item.entity_id.bytes),
            staging.text(item.name),
            staging.text(item.category),
            staging.text(item.unique_key),
            staging.text_array(item.tags),
        )
    )


def _staged_row(ord_: int, encoded: Encoded) -> bytes:
    field = staging.field
    return staging.row(
        (
            staging.int4(ord_),
            field(encoded.body),
            field(encoded.digest),
            field(encoded.leaf_hash),
            field(encoded.field_hashes),
        )
    )


def create_versions(
    conn: Connection,
    tenant: str,
    *,
    kind: str,
    items: Sequence[NewItem],
    encoded: Iterable[Encoded],
    actor: str,
    at: str,
    pins: dict[str, int],
    then: Callable[[int], None] | None = None,
) -> int:
    """Append version 1 of the new entities ``items`` and their heads in the caller's
    transaction; returns the first index, item i being at first + i. ``then(first)`` runs on
    the encoding thread once every document is made, while the server appends the last
    chunk (before this returns).

    Every item's identity is copied first. ``encoded`` (item i's document at i) may encode
    each as it is asked for: it runs on a helper thread (``staging.ahead``) from then on.
    While it makes the first chunk, the server checks every item's key at once and writes
    every tag (``plant_batch_items``: ``KeysTaken`` names every item refused, and nothing is
    written); then this thread copies each chunk into a temporary table and has the server
    append its entries and heads (``plant_batch_append``) while the helper makes the next,
    so the server's index work overlaps the encoding. The counter moves once, first
    (``plant_batch_open``); the last step checks the batch left no gap
    (``plant_batch_close``); any failure rolls all of it back.
    """
    count = len(items)
    params = {"tenant": tenant, "kind": kind, "actor": actor, "at": at, "count": count}
    first = conn.execute(_OPEN, {**params, **_pins(pins)}).scalar_one()
    conn.execute(_ITEMS)
    conn.execute(_STAGE)
    rows = staging.payload(_item_row(i, item) for i, item in enumerate(items))
    staging.copy_in(conn, "pg_temp.plant_items", _ITEM_COLUMNS, rows)
    step = {**params, "first": first}
    last = None if then is None else (lambda: then(first))
    with staging.ahead(_chunks(encoded), then=last) as chunks:  # leaving the block stops it
        taken = conn.execute(_CHECK_ITEMS, step).all()
        if taken:
            raise KeysTaken([(r[0], r[1], r[2]) for r in taken])
        for payload in chunks:
            staging.copy_in(conn, "pg_temp.plant_staged", _STAGED_COLUMNS, payload)
            conn.execute(_APPEND_STAGED, step)
    conn.execute(_CLOSE, step)
    return first


def _chunks(encoded: Iterable[Encoded]) -> Iterator[bytes]:
    """COPY payloads of ``CHUNK`` items each."""
    rows: list[bytes] = []
    for i, item in enumerate(encoded):
        rows.append(_staged_row(i, item))
        if len(rows) == CHUNK:
            yield staging.payload(rows)
            rows = []
        elif i % YIELD_EVERY == 0:
            time.sleep(0)  # let the sending thread take the GIL if it is waiting for it
    if rows:
        yield staging.payload(rows)


@dataclass(frozen=True)
class StoredEntry:
    index: int
    entry_type: str
    kind: str
    entity_id: str
    version: int
    body: bytes
    digest: bytes
    leaf_hash: bytes
    prev_digest: bytes | None
    actor: str
    created_at: str


_COLUMNS = (
    "idx, entry_type, kind, CAST(entity_id AS text), version, body, digest, leaf_hash, "
    "prev_digest, actor, to_char(created_at AT TIME ZONE 'UTC', "
    '\'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"\')'
)


def _entry(row: tuple[Any, ...]) -> StoredEntry:
    return StoredEntry(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        bytes(row[5]),
        bytes(row[6]),
        bytes(row[7]),
        bytes(row[8]) if row[8] is not None else None,
        row[9],
        row[10],
    )


def entry_at(conn: Connection, index: int) -> StoredEntry | None:
    row = conn.execute(
        text(f"SELECT {_COLUMNS} FROM log_entries WHERE idx = :idx"), {"idx": index}
    ).first()
    return _entry(tuple(row)) if row else None


def version_entry(conn: Connection, entity_id: str, version: int) -> StoredEntry | None:
    row = conn.execute(
        text(
            f"SELECT {_COLUMNS} FROM log_entries WHERE entity_id = CAST(:id AS uuid) "
            "AND version = :version AND entry_type = 'version'"
        ),
        {"id": entity_id, "version": version},
    ).first()
    return _entry(tuple(row)) if row else None


def entity_entries(conn: Connection, entity_id: str, entry_type: str) -> list[StoredEntry]:
    """Every entry of one type ('version' or 'certificate') of an entity, in log order."""
    rows = conn.execute(
        text(
            f"SELECT {_COLUMNS} FROM log_entries WHERE entity_id = CAST(:id AS uuid) "
            "AND entry_type = :type ORDER BY idx"
        ),
        {"id": entity_id, "type": entry_type},
    ).all()
    return [_entry(tuple(r)) for r in rows]


def version_entries(conn: Connection, entity_id: str) -> list[StoredEntry]:
    """Versions in log order (which is version order, unless someone re-ordered the log)."""
    return entity_entries(conn, entity_id, "version")


def certificate_entries(conn: Connection, entity_id: str) -> list[StoredEntry]:
    return entity_entries(conn, entity_id, "certificate")
