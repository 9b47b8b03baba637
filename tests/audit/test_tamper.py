"""Each attack is made as a PostgreSQL superuser with triggers and RLS out of the way; the
audit must name it precisely, and a clean log must yield no finding at all."""

from __future__ import annotations

from shared import audit, tlog
from shared.audit import versions
from shared.integrity import note
from shared.registry import writes
from tests.support import tampering
from tests.support.tampering import rewrite_body


def _kinds(run):
    return sorted(f["kind"] for f in run["findings"])


def test_clean_log_has_no_findings(history):
    run = history.audit("full")
    assert run["findings"] == []
    assert run["finding_count"] == 0
    assert run["verified_to"] > 0


def test_updating_one_field_is_one_altered_finding_saying_the_field_cannot_be_named(
    history, attack, entry_indices
):
    """The entry, entity and version are named; the field is not: the per-field digests
    beside the row are not signed, so nothing the audit trusts says which one changed."""
    first = entry_indices(history.tenant, history.skills[2])[0]
    rewrite_body(attack, history.tenant, first, "writes Rust", "writes COBOL")
    run = history.audit("full")
    assert len(run["findings"]) == 1, run["findings"]
    finding = run["findings"][0]
    assert finding["kind"] == "altered"
    assert (finding["section"], finding["field"]) == (None, None)
    assert finding["field_unnamed"] == versions.UNNAMED
    assert finding["log_index"] == first
    assert finding["entity_id"] == history.skills[2]
    assert finding["version"] == 1


def test_an_edit_that_also_rewrites_the_locators_is_still_altered(history, attack, entry_indices):
    """The packed section and field digests are locators kept beside the row, not part of the
    proof: rewriting them too (to garbage, or to another layout's bytes) cannot hide the edit,
    it only takes away the name of the field."""
    first = entry_indices(history.tenant, history.skills[2])[0]
    attack(
        "UPDATE log_entries SET body = convert_to(replace(convert_from(body, 'UTF8'), "
        "'writes Rust', 'writes COBOL'), 'UTF8'), field_hashes = '\\x01ffff'::bytea "
        "WHERE tenant_id = :t AND idx = :i",
        t=history.tenant,
        i=first,
    )
    run = history.audit("full")
    assert [(f["kind"], f["log_index"], f["section"], f["field"]) for f in run["findings"]] == [
        ("altered", first, None, None)
    ]


def test_deleted_version_is_missing_at_its_index(history, attack, entry_indices):
    index = entry_indices(history.tenant, history.skills[2])[0]
    attack("DELETE FROM log_entries WHERE tenant_id = :t AND idx = :i", t=history.tenant, i=index)
    run = history.audit("full")
    missing = [f for f in run["findings"] if f["kind"] == "missing"]
    assert [f["log_index"] for f in missing] == [index]


def test_forged_row_is_inserted(history, attack, superuser):
    from sqlalchemy import text

    with superuser.connect() as conn:
        row = conn.execute(
            text(
                "SELECT kind, entity_id, body, digest, leaf_hash, field_hashes FROM log_entries "
                "WHERE tenant_id = :t ORDER BY idx LIMIT 1"
            ),
            {"t": history.tenant},
        ).one()
        size = conn.execute(
            text("SELECT size FROM log_heads WHERE tenant_id = :t"), {"t": history.tenant}
        ).scalar_one()
    attack(
        "INSERT INTO log_entries (tenant_id, idx, entry_type, kind, entity_id, version, body, "
        "digest, leaf_hash, prev_digest, field_hashes, actor) VALUES (:t, :i, 'version', :k, "
        ":e, 9, :b, :d, :l, NULL, :f, 'mallory')",
        t=history.tenant,
        i=size,
        k=row[0],
        e=row[1],
        b=row[2],
        d=row[3],
        l=row[4],
        f=row[5],
    )
    run = history.audit("full")
    inserted = [f for f in run["findings"] if f["kind"] == "inserted"]
    assert size in [f["log_index"] for f in inserted]


def test_swapped_indices_are_reordered(history, attack, entry_indices):
    a, b = entry_indices(history.tenant, history.skills[0])[:2]
    t = history.tenant
    attack("UPDATE log_entries SET idx = 999999999 WHERE tenant_id = :t AND idx = :a", t=t, a=a)
    attack("UPDATE log_entries SET idx = :a WHERE tenant_id = :t AND idx = :b", t=t, a=a, b=b)
    attack("UPDATE log_entries SET idx = :b WHERE tenant_id = :t AND idx = 999999999", t=t, b=b)
    run = history.audit("full")
    reordered = [f for f in run["findings"] if f["kind"] == "reordered"]
    assert {f["log_index"] for f in reordered} == {a, b}
    assert "altered" not in _kinds(run)


def test_edited_digest_matching_edited_bytes_is_caught_by_the_tree(
    history, attack, superuser, entry_indices
):
    index = entry_indices(history.tenant, history.skills[2])[0]
    body = tampering.stored_body(superuser, history.tenant, index)
    tampering.forge_entry(
        attack, history.tenant, index, body.replace(b"writes Rust", b"writes Ruby")
    )
    run = history.audit("full")
    altered = [f for f in run["findings"] if f["kind"] == "altered"]
    assert [f["log_index"] for f in altered] == [index]
    assert altered[0]["field"] is None  # the locators are not signed: ``versions.UNNAMED``


def test_log_resigned_with_another_key_is_checkpoint_invalid(history, attack, superuser):
    from sqlalchemy import text

    mallory = note.Signer.from_seed(tlog.origin(history.tenant).rsplit("/", 1)[0], b"\x07" * 32)
    with superuser.connect() as conn:
        rows = conn.execute(
            text("SELECT size, root FROM checkpoints WHERE tenant_id = :t"), {"t": history.tenant}
        ).all()
    for size, root in rows:
        forged = note.sign_note(
            note.checkpoint_body(tlog.origin(history.tenant), size, bytes(root)), [mallory]
        )
        attack(
            "UPDATE checkpoints SET note = :n WHERE tenant_id = :t AND size = :s",
            n=forged,
            t=history.tenant,
            s=size,
        )
    run = history.audit("full")
    assert "checkpoint_invalid" in _kinds(run)


def test_restoring_an_old_checkpoint_is_a_rollback(history, attack):
    writes.create(
        history.author, "skills", {"name": "Zig", "description": "d", "category": "technical"}, "r"
    )
    newest = tlog.seal(history.tenant).checkpoint.size
    attack("DELETE FROM checkpoints WHERE tenant_id = :t AND size = :s", t=history.tenant, s=newest)
    run = history.audit("incremental")
    rollback = [f for f in run["findings"] if f["kind"] == "rollback"]
    assert rollback, run["findings"]


def test_flipped_certificate_byte_is_certificate_invalid(history, attack, superuser):
    index = tampering.flip_certificate_signature(superuser, attack, history.tenant)
    run = history.audit("full")
    assert [f["kind"] for f in run["findings"]] == ["certificate_invalid"]
    assert run["findings"][0]["log_index"] == index


def test_entity_report_names_the_altered_version_not_a_field(history, attack, entry_indices):
    first = entry_indices(history.tenant, history.skills[2])[0]
    rewrite_body(attack, history.tenant, first, '"Rust"', '"Rusty"')
    report = audit.entity_report(history.auditor, "skills", history.skills[2])
    assert [(f["kind"], f["log_index"], f["version"], f["field"]) for f in report["findings"]] == [
        ("altered", first, 1, None)
    ]


def _amend_times(history, entity_id: str, current: int, times: int) -> None:
    for n in range(current - 1, current - 1 + times):
        doc = history.amend(entity_id, n + 1, f"writes Go, take {n}")
        assert doc.version == n + 2


def test_entity_report_reads_every_entry_in_a_fixed_number_of_queries(
    history, attack, entry_indices, sent_statements
):
    def counted(entity_id: str) -> tuple[dict, int]:
        with sent_statements() as sent:
            report = audit.entity_report(history.auditor, "skills", entity_id)
        return report, len(sent)

    go = history.skills[1]  # certified: versions 1 and 2, and the certificate
    few, few_count = counted(go)
    _amend_times(history, go, 2, 4)
    tlog.seal(history.tenant)
    indices = entry_indices(history.tenant, go)
    many, many_count = counted(go)
    assert (many["entries"], many["sealed"]) == (few["entries"] + 4, len(indices))
    assert few["findings"] == [] and many["findings"] == []
    assert many_count == few_count  # not two more statements per entry
    # the stored leaf of the fourth entry rewritten: named at that index, not another
    attack(
        "UPDATE log_nodes SET hash = sha256(hash) WHERE tenant_id = :t AND level = 0 AND idx = :i",
        t=history.tenant,
        i=indices[3],
    )
    report, _ = counted(go)
    assert [
        (f["kind"], f["entity_id"], f["version"], f["log_index"]) for f in report["findings"]
    ] == [("altered", go, 3, indices[3])]
