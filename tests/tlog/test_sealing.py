"""Sealing: incremental, idempotent, O(new + log n) reads, anchored outside the database."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from shared import tlog
from shared.config import settings
from shared.errors import IntegrityViolation
from shared.integrity import merkle, note
from shared.storage import tree
from shared.storage.engine import database
from shared.tlog import anchors


def _seed_raw(superuser, tenant: str, start: int, count: int) -> None:
    """Append ``count`` synthetic entries as the owner would, fast (generate_series)."""
    with superuser.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO log_entries (tenant_id, idx, entry_type, kind, entity_id, version, "
                "body, digest, leaf_hash, prev_digest, field_digests, actor) "
                "SELECT :t, i, 'version', 'skill', gen_random_uuid(), 1, b, sha256(b), "
                "sha256('\\x00'::bytea || b), NULL, '{}', 'seed' "
                "FROM generate_series(CAST(:a AS bigint), CAST(:b AS bigint) - 1) AS i, "
                "LATERAL (SELECT convert_to('entry ' || i, 'UTF8') AS b) AS x"
            ),
            {"t": tenant, "a": start, "b": start + count},
        )
        conn.execute(
            text(
                "INSERT INTO log_heads (tenant_id, size) VALUES (:t, :n) "
                "ON CONFLICT (tenant_id) DO UPDATE SET size = :n"
            ),
            {"t": tenant, "n": start + count},
        )


def _reads(conn) -> int:
    return int(
        conn.execute(
            text(
                "SELECT coalesce(sum(coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)), 0) "
                "FROM pg_stat_xact_user_tables WHERE relname IN ('log_entries', 'log_nodes')"
            )
        ).scalar_one()
    )


def test_seal_signs_a_checkpoint_that_matches_the_rfc_root(tenant, fill, stored_leaves):
    fill(tenant, 7)
    sealed = tlog.seal(tenant)
    assert sealed.created and sealed.checkpoint.size == 8  # the 7 entries and the map commit
    leaves = stored_leaves(tenant)
    assert sealed.checkpoint.root == merkle.root_from_leaves(leaves)
    from shared.tlog import keys

    text_, _ = note.open_note(sealed.checkpoint.note, list(keys.keyring().verifiers))
    parsed = note.parse_checkpoint(text_)
    assert (parsed.origin, parsed.size) == (tlog.origin(tenant), 8)


def test_seal_is_idempotent_when_nothing_is_new(tenant, fill):
    fill(tenant, 3)
    first = tlog.seal(tenant)
    again = tlog.seal(tenant)
    assert not again.created
    assert again.checkpoint == first.checkpoint


def test_sealing_10k_on_top_of_100k_reads_new_plus_log_n_rows(superuser, tenant, database_url):
    _seed_raw(superuser, tenant, 0, 100_000)
    tlog.seal(tenant)  # and its map commit, at 100_000
    _seed_raw(superuser, tenant, 100_001, 10_000)
    store = anchors.anchor_store(settings())
    with database().transaction(tenant) as conn:
        before = _reads(conn)
        sealed = tlog.seal_in(conn, tenant, store)
        rows = _reads(conn) - before
    assert sealed.created and sealed.checkpoint.size == 110_002
    assert sealed.leaves_read == 10_001  # the new entries and the new map commit
    assert sealed.nodes_read <= 2 * (110_002).bit_length()
    # What PostgreSQL itself counted: the new entries read twice (once by the map step, for
    # the heads they change; once for their leaves), O(log n) nodes, a few head/checkpoint
    # rows. These synthetic entries state no status, so no map path is read.
    assert 20_000 <= rows <= 20_002 + 4 * (110_002).bit_length() + 20, rows


def test_deleting_the_newest_checkpoint_is_reported_as_rollback(superuser, tenant, fill):
    fill(tenant, 2)
    tlog.seal(tenant)
    fill(tenant, 2)
    newest = tlog.seal(tenant).checkpoint.size
    with superuser.begin() as conn:
        conn.execute(text("SET session_replication_role = replica"))
        conn.execute(
            text("DELETE FROM checkpoints WHERE tenant_id = :t AND size = :s"),
            {"t": tenant, "s": newest},
        )
    with pytest.raises(IntegrityViolation) as caught:
        tlog.seal(tenant)
    assert caught.value.extensions["finding"] == "rollback"


def test_restored_older_checkpoint_table_is_a_rollback_even_after_new_writes(
    superuser, tenant, fill
):
    fill(tenant, 2)
    tlog.seal(tenant)
    fill(tenant, 3)
    tlog.seal(tenant)
    with superuser.begin() as conn:
        conn.execute(text("SET session_replication_role = replica"))
        conn.execute(
            text("DELETE FROM checkpoints WHERE tenant_id = :t AND size > 2"), {"t": tenant}
        )
    fill(tenant, 5)  # the database moves on, as if the newer history never existed
    with pytest.raises(IntegrityViolation) as caught:
        tlog.seal(tenant)
    assert caught.value.extensions["finding"] == "rollback"


def test_anchor_holds_every_checkpoint_write_once(tenant, fill):
    fill(tenant, 1)
    first = tlog.seal(tenant).checkpoint
    store = anchors.anchor_store(settings())
    assert store.get(tenant, first.size) == first.note
    with pytest.raises(anchors.AnchorConflict):
        store.put(tenant, first.size, first.note.replace(f"\n{first.size}\n", "\n9\n"))
    assert store.latest(tenant) == (first.size, first.note)


def test_stored_tree_matches_recomputed_root_at_every_checkpoint(
    superuser, tenant, fill, stored_leaves
):
    sizes = []
    for n in (1, 2, 5, 1):
        fill(tenant, n)
        sizes.append(tlog.seal(tenant).checkpoint.size)
    leaves = stored_leaves(tenant)
    with superuser.connect() as conn:
        roots = dict(
            conn.execute(
                text("SELECT size, root FROM checkpoints WHERE tenant_id = :t"), {"t": tenant}
            ).all()
        )
    for size in sizes:
        assert bytes(roots[size]) == merkle.root_from_leaves(leaves[:size])
    with database().transaction(tenant) as conn:
        assert tree.log_size(conn) == len(leaves)
