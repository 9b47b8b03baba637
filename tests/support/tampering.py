"""Edits an attacker makes to the ledger in the tests: through the ``attack`` fixture (a
superuser with triggers and row-level security out of the way), or through the registry's
own ledger functions, past the checks its API makes."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from shared.integrity import canonical, digests, merkle
from shared.registry import versions, writes
from shared.rules import kinds
from shared.security.principal import Principal
from shared.storage.engine import database


def as_insider(superuser: Engine, sql: str, **params: Any) -> None:
    """Run SQL as a superuser with triggers (``session_replication_role``) and row-level
    security out of the way: the ``attack`` fixtures."""
    with superuser.begin() as conn:
        conn.execute(text("SET session_replication_role = replica"))
        conn.execute(text(sql), params)


def rewrite_body(attack: Callable[..., None], tenant: str, index: int, old: str, new: str) -> None:
    """In the stored bytes of one entry, replace the text ``old`` with ``new``."""
    attack(
        "UPDATE log_entries SET body = convert_to(replace(convert_from(body, 'UTF8'), "
        ":old, :new), 'UTF8') WHERE tenant_id = :t AND idx = :i",
        old=old,
        new=new,
        t=tenant,
        i=index,
    )


def stored_body(superuser: Engine, tenant: str, index: int) -> bytes:
    """The bytes of entry ``index`` as stored, read past row-level security."""
    with superuser.connect() as conn:
        return bytes(
            conn.execute(
                text("SELECT body FROM log_entries WHERE tenant_id = :t AND idx = :i"),
                {"t": tenant, "i": index},
            ).scalar_one()
        )


def flip_certificate_signature(superuser: Engine, attack: Callable[..., None], tenant: str) -> int:
    """In the stored bytes of the tenant's one certificate entry, flip the lowest bit of its
    DSSE signature's first byte (the entry still parses); returns the entry's index."""
    with superuser.connect() as conn:
        index, body = conn.execute(
            text(
                "SELECT idx, body FROM log_entries WHERE tenant_id = :t "
                "AND entry_type = 'certificate'"
            ),
            {"t": tenant},
        ).one()
    envelope = canonical.loads(bytes(body))
    sig = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
    sig[0] ^= 0x01
    envelope["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    attack(
        "UPDATE log_entries SET body = :b WHERE tenant_id = :t AND idx = :i",
        b=canonical.dumps(envelope),
        t=tenant,
        i=index,
    )
    return index


def forge_entry(attack: Callable[..., None], tenant: str, index: int, body: bytes) -> None:
    """Entry ``index`` rewritten to ``body`` with its digest and leaf hash to match: only the
    tree (and what signs it) still disagrees."""
    attack(
        "UPDATE log_entries SET body = :b, digest = :d, leaf_hash = :l "
        "WHERE tenant_id = :t AND idx = :i",
        b=body,
        d=digests.sha256(body),
        l=merkle.leaf_hash(body),
        t=tenant,
        i=index,
    )


def append_unchecked(principal: Principal, slug: str, entity_id: str, **changes: Any) -> int:
    """A new version of an entity with ``changes`` merged into its fields, appended through
    the registry's own ledger functions with no input check (an insider running its code);
    returns the version's log index."""
    kind = kinds.resolve_kind(slug)
    with database().transaction(principal.tenant) as conn:
        cur = writes.lock_current(conn, kind, entity_id, None, lock=False)
    doc = versions.append_version(
        None,
        principal,
        kind,
        versions.VersionWrite(
            entity_id=entity_id,
            head=cur.head,
            fields={**cur.fields, **changes},
            status=cur.head.status,
            reason="written behind the API's back",
            action="amend",
            request_id="insider",
            created_at=cur.doc["lifecycle"]["created_at"],
            previous_digest=cur.entry.digest,
        ),
    )
    return int(doc.body["audit_trail"]["log_index"])


def status_past_the_cascade(principal: Principal, slug: str, entity_id: str, status: str) -> int:
    """A new version of an entity with status ``status`` (and its content as it was),
    appended straight to the ledger as the code before the certification cascade wrote
    one: nothing that depends on it moves. Returns its log index."""
    from shared.integrity import canonical, digests
    from shared.registry import documents
    from shared.registry.documents import Change
    from shared.storage import ledger
    from shared.tlog import receipts

    kind = kinds.resolve_kind(slug)
    with versions.write_transaction(principal) as conn:
        cur = writes.lock_current(conn, kind, entity_id, None)
        now = canonical.now_text()
        version = cur.head.version + 1
        change = Change(
            principal.tenant, entity_id, version, status, cur.doc["lifecycle"]["created_at"],
            now, digests.label(cur.entry.digest), "past the cascade", principal.subject, "r",
            "status", [],
        )  # fmt: skip
        encoded = documents.encode(documents.build(kind, cur.fields, change))
        move = ledger.HeadMove(
            status, cur.fields["name"], cur.fields.get("category"), None, False, now,
            cur.head.log_index, {},
        )  # fmt: skip
        new = ledger.NewVersion(
            principal.tenant, kind.type, entity_id, version, encoded, cur.entry.digest,
            principal.subject, move,
        )  # fmt: skip
        index = ledger.append_version(conn, new).index
        receipts.record(conn, principal.tenant, index, [encoded.leaf_hash])  # it has the key
        return index


# The map's strata (``shared/storage/map_strata.py``): each row is records of one byte of
# position and a node's 65 bytes. The leaf of key :k, its value hash's last byte flipped.
MAP_LEAF_FLIPPED = (
    "UPDATE heads_map_strata s SET nodes = set_byte(s.nodes, r.at, get_byte(s.nodes, r.at) # 1) "
    "FROM (SELECT m.prefix, 66 * j + 65 AS at FROM heads_map_strata m, "
    "generate_series(0, length(m.nodes) / 66 - 1) AS j WHERE m.tenant_id = :t "
    "AND get_byte(m.nodes, 66 * j + 1) = 2 AND substring(m.nodes FROM 66 * j + 3 FOR 32) = :k) "
    "AS r WHERE s.tenant_id = :t AND s.prefix = r.prefix"
)
# The root node (the top stratum's first record), both its child hashes flipped.
MAP_ROOT_CHILDREN_FLIPPED = (
    "UPDATE heads_map_strata SET nodes = set_byte(set_byte(nodes, 33, get_byte(nodes, 33) # 1), "
    "65, get_byte(nodes, 65) # 1) WHERE tenant_id = :t AND prefix = ''::bytea"
)
