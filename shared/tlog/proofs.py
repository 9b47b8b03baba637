"""Reads of the tenant's log: checkpoints, entries, inclusion and consistency proofs, public
keys, and one version's proof."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from shared.errors import InvalidQuery, NotFound
from shared.integrity import canonical, digests, merkle
from shared.rules import path_params, query_params
from shared.security.principal import READ_ROLES, Principal
from shared.storage import cosignatures, ledger, receipt_rows, tree
from shared.storage.engine import database
from shared.tlog import keys, receipts


def latest_checkpoint(principal: Principal) -> tree.StoredCheckpoint:
    principal.require(*READ_ROLES)
    with database().transaction(principal.tenant) as conn:
        last = tree.latest_checkpoint(conn)
        if last is None:
            raise NotFound("the log has no checkpoint yet (POST /log/seal)")
        return cosignatures.cosigned(conn, last)


def checkpoint_at(principal: Principal, query: dict[str, str]) -> tree.StoredCheckpoint:
    principal.require(*READ_ROLES)
    size = query_params.integer(query, "size", minimum=1, required=True)
    assert size is not None
    with database().transaction(principal.tenant) as conn:
        found = tree.checkpoint_at(conn, size)
        if found is None:
            raise NotFound(f"no checkpoint of size {size}")
        return cosignatures.cosigned(conn, found)


def entry(principal: Principal, raw_index: str) -> dict[str, Any]:
    principal.require(*READ_ROLES)
    index = path_params.number(raw_index, "index", minimum=0, maximum=query_params.MAX_INTEGER)
    found = receipt = None
    if index is not None:
        with database().transaction(principal.tenant) as conn:
            found = ledger.entry_at(conn, index)
            if found is not None:
                held = receipts.entry_receipts(receipt_rows.covering(conn, index, index + 1))
                receipt = held.get(index)
    if found is None:
        raise NotFound(f"no entry {raw_index}")
    return {
        "index": found.index,
        "entry_type": found.entry_type,
        "entity_type": found.kind,
        "entity_id": found.entity_id,
        "version": found.version,
        "body": digests.b64(found.body),
        "leaf_hash": digests.b64(found.leaf_hash),
        "digest": "sha256:" + found.digest.hex(),
        # when, as the write's signed receipt says (the row's created_at column is covered by
        # no signature); none before the entry's receipt exists
        "created_at": _signed_time(receipt.time_ms) if receipt is not None else None,
        "receipt": receipt.to_json() if receipt is not None else None,
    }


def _signed_time(time_ms: int) -> str:
    return canonical.time_text(datetime.fromtimestamp(time_ms / 1000, UTC))


def _sealed_size(conn: Connection) -> int:
    last = tree.latest_checkpoint(conn)
    return last.size if last else 0


def _invalid_query(field: str, message: str) -> InvalidQuery:
    return InvalidQuery([{"field": field, "message": message}])


def inclusion(principal: Principal, query: dict[str, str]) -> dict[str, Any]:
    principal.require(*READ_ROLES)
    size = query_params.integer(query, "size", minimum=1)
    index = query_params.integer(query, "index")
    leaf_b64 = query.get("leaf_hash")
    if (index is None) == (leaf_b64 is None):
        raise _invalid_query("index", "send exactly one of index and leaf_hash")
    with database().transaction(principal.tenant) as conn:
        sealed = _sealed_size(conn)
        size = sealed if size is None else size
        if not 0 < size <= sealed:
            raise _invalid_query("size", f"size must be from 1 to the checkpointed size {sealed}")
        if leaf_b64 is not None:
            index = tree.index_of_leaf(conn, _decode_hash(leaf_b64), size)
            if index is None:
                raise NotFound("no entry with that leaf hash in the tree of that size")
        assert index is not None
        if index >= size:
            raise _invalid_query("index", f"index must be below size {size}")
        reader = tree.proof_nodes(conn, principal.tenant)
        proof = merkle.inclusion_proof(reader, index, size)
        leaf = reader.get_nodes([(0, index)])[(0, index)]
    return {
        "index": index,
        "tree_size": size,
        "leaf_hash": digests.b64(leaf),
        "proof": [digests.b64(h) for h in proof],
    }


def _decode_hash(raw: str) -> bytes:
    try:
        value = base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise _invalid_query("leaf_hash", "leaf_hash must be base64") from exc
    if len(value) != 32:
        raise _invalid_query("leaf_hash", "leaf_hash must be 32 bytes")
    return value


def consistency(principal: Principal, query: dict[str, str]) -> dict[str, Any]:
    principal.require(*READ_ROLES)
    old = query_params.integer(query, "old", minimum=1, required=True)
    new = query_params.integer(query, "new", minimum=1, required=True)
    assert old is not None and new is not None
    with database().transaction(principal.tenant) as conn:
        sealed = _sealed_size(conn)
        if not 0 < new <= sealed:
            raise _invalid_query("new", f"new must be from 1 to the checkpointed size {sealed}")
        if not 0 < old <= new:
            raise _invalid_query("old", "old must be from 1 to new")
        proof = merkle.consistency_proof(tree.proof_nodes(conn, principal.tenant), old, new)
    return {"old_size": old, "new_size": new, "proof": [digests.b64(h) for h in proof]}


def public_keys() -> dict[str, Any]:
    ring = keys.keyring()
    return {"active": ring.active.vkey, "keys": ring.vkeys}


def version_proof(principal: Principal, log_index: int) -> dict[str, Any]:
    """Inclusion proof of one entry against the latest checkpoint, with that checkpoint."""
    with database().transaction(principal.tenant) as conn:
        last = tree.latest_checkpoint(conn)
        if last is None or log_index >= last.size:
            raise NotFound(
                "this version is not in a checkpoint yet; it will be after the next seal"
            )
        proof = merkle.inclusion_proof(
            tree.proof_nodes(conn, principal.tenant), log_index, last.size
        )
    return {
        "index": log_index,
        "tree_size": last.size,
        "proof": [digests.b64(h) for h in proof],
        "checkpoint": last.note,
    }
