"""Fast seeding of many real registry documents, for tests about size (audits, exports)."""

from __future__ import annotations

from sqlalchemy import text


def seed_skills(
    superuser,
    tenant: str,
    start: int,
    count: int,
    description: str = "seeded",
    tags: tuple[str, ...] = (),
) -> None:
    """Real registry documents, written in bulk: each is a skill version as the registry would
    write it (canonical bytes, digests, heads), so audits check them for real."""
    import uuid

    from shared.registry import documents
    from shared.registry.documents import Change
    from shared.registry.versions import passed_rules
    from shared.rules import names
    from shared.rules.kinds import KINDS

    kind = KINDS["skills"]
    rows = []
    for i in range(start, start + count):
        entity_id = str(uuid.UUID(int=(hash(tenant) & (2**64 - 1)) << 64 | i))
        fields = {f.name: None for f in kind.fields}
        fields.update(
            name=f"skill {i}",
            description=description,
            category="technical",
            tags=list(tags),
            custom_attributes={},
        )
        change = Change(
            tenant,
            entity_id,
            1,
            "draft",
            "2026-01-01T00:00:00.000Z",
            "2026-01-01T00:00:00.000Z",
            None,
            "created",
            "seed",
            f"seed-{i}",
            "create",
            passed_rules(kind),
        )
        enc = documents.encode(documents.build(kind, fields, change))
        rows.append(
            {
                "t": tenant,
                "i": i,
                "e": entity_id,
                "b": enc.body,
                "d": enc.digest,
                "l": enc.leaf_hash,
                "f": enc.field_hashes,
            }
        )
    keys = [names.unique_key(f"skill {r['i']}") for r in rows]
    with superuser.begin() as conn:
        # appended at the log's size (which an audit's report may have moved past ``start``)
        size = conn.execute(
            text("SELECT coalesce(max(size), 0) FROM log_heads WHERE tenant_id = :t"), {"t": tenant}
        ).scalar_one()
        for r in rows:
            r["i"] += int(size) - start
        cols = {key: [r[key] for r in rows] for key in ("i", "e", "b", "d", "l", "f")}
        conn.execute(
            text(
                "INSERT INTO log_entries (tenant_id, idx, entry_type, kind, entity_id, version, "
                "body, digest, leaf_hash, prev_digest, field_hashes, actor) "
                "SELECT :t, i, 'version', 'skill', CAST(e AS uuid), 1, b, d, l, NULL, "
                "f, 'seed' FROM unnest(CAST(:i AS bigint[]), CAST(:e AS text[]), "
                "CAST(:b AS bytea[]), CAST(:d AS bytea[]), CAST(:l AS bytea[]), "
                "CAST(:f AS bytea[])) AS x(i, e, b, d, l, f)"
            ),
            {"t": tenant, **cols},
        )
        conn.execute(
            text(
                "INSERT INTO entity_heads (tenant_id, entity_id, kind, version, status, name, "
                "category, unique_key, first_index, log_index, created_at, updated_at) "
                "SELECT :t, CAST(e AS uuid), 'skill', 1, 'draft', 'skill ' || n, 'technical', "
                "k, i, i, now(), now() FROM unnest(CAST(:i AS bigint[]), CAST(:e AS text[]), "
                "CAST(:k AS text[]), CAST(:n AS bigint[])) AS x(i, e, k, n)"
            ),
            {
                "t": tenant,
                "i": cols["i"],
                "e": cols["e"],
                "k": keys,
                "n": list(range(start, start + count)),
            },
        )
        conn.execute(
            text(
                "INSERT INTO log_heads (tenant_id, size) VALUES (:t, :n) "
                "ON CONFLICT (tenant_id) DO UPDATE SET size = :n"
            ),
            {"t": tenant, "n": int(size) + count},
        )
        if conn.execute(text("SELECT to_regclass('log_receipts')")).scalar() is not None:
            for at in range(0, count, RECEIPT_BATCH):  # as bulk creates of at most that many
                store_receipt(conn, tenant, start + at, cols["l"][at : at + RECEIPT_BATCH])


RECEIPT_BATCH = 1000


def store_receipt(conn, tenant: str, first: int, leaves: list[bytes]) -> None:
    """The batch receipt the registry would have signed over seeded entries [first, +n),
    stored as the superuser (the registry's own key, as a bulk create signs)."""
    from shared.tlog import keys, receipts

    row, _, _ = receipts.sign(keys.keyring().active, tenant, first, leaves, batch=True)
    conn.execute(
        text(
            "INSERT INTO log_receipts (tenant_id, first_idx, count, receipt, leaves) "
            "VALUES (:t, :f, :c, :r, :l)"
        ),
        {"t": tenant, "f": row.first, "c": row.count, "r": row.receipt, "l": row.leaves},
    )
