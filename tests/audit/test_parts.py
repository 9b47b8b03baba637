"""A full audit in parts (``shared.audit.parts``): N parts, each scanning its share of the log
up to the newest signed checkpoint in a snapshot of its own, and a merge of what they wrote to
the anchor store, find exactly what one full audit finds, in the same order: on a clean log
and on every attack, an attacked entry at a part's first index and an entity whose versions
lie in several parts among them. A part missing, edited, re-signed or of another run is
refused by name before the merge's run starts."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from shared import tlog
from shared.audit import entry_ranges, parts, receipts, runs
from shared.integrity import digests, note
from tests.audit import test_parallel_scan as scan_attacks
from tests.support import tampering
from tests.support.tampering import rewrite_body

COUNT = 4


def _write_parts(history, count: int = COUNT) -> str:
    """Every part written, as the tasks of one execution would: its name."""
    execution = f"x-{uuid.uuid4().hex[:8]}"
    for index in range(count):
        parts.write(history.tenant, execution, index, count)
    return execution


def _merge(history, execution: str, count: int = COUNT) -> dict:
    run, started = parts.merge(history.auditor, execution, count)
    assert started and run["status"] == "completed", run
    return run


def _parts_then_merge(history, count: int = COUNT) -> dict:
    """Every part written, then merged: the merge's run document."""
    execution = _write_parts(history, count)
    run, started = parts.merge(history.auditor, execution, count)
    assert started and run["status"] == "completed", run
    return run


def _alike(history, count: int = COUNT) -> tuple[list, dict]:
    """(a one-process full audit's findings, the merged run) on the same log: the one-process
    audit is the run's own passes (``runs._audit``, what `plant audit --mode full` runs),
    left unrecorded so that it logs no report, and the merge's run comes next."""
    alone = runs._audit(history.tenant, "full")
    merged = _parts_then_merge(history, count)
    assert merged["summary"]["parts"]["count"] == count
    assert merged["findings"] == alone["findings"]
    assert merged["verified_to"] == alone["verified_to"]
    assert merged["summary"]["parts"]["entries"] == alone["verified_to"]  # all from the parts
    return alone["findings"], merged


@pytest.fixture
def read_ranges(monkeypatch) -> list[tuple[int, int]]:
    """The ranges the audit's own process reads (``entry_ranges.read``), in order."""
    read: list[tuple[int, int]] = []
    original = entry_ranges.read

    def recorded(state, low, high, builder, kept):
        read.append((low, high))
        return original(state, low, high, builder, kept)

    monkeypatch.setattr(entry_ranges, "read", recorded)
    return read


def test_the_log_is_cut_into_aligned_ranges_shared_out_evenly():
    assert parts.ranges(40, 4) == [(0, 8), (8, 16), (16, 24), (24, 32), (32, 40)]
    assert [parts.share(40, 4, i) for i in range(4)] == [
        [(0, 8)],
        [(8, 16)],
        [(16, 24)],
        [(24, 32), (32, 40)],
    ]
    wide = parts.ranges(1_000_000, 4)
    assert {high - low for low, high in wide[:-1]} == {1 << 16}
    assert sum(len(parts.share(1_000_000, 4, i)) for i in range(4)) == len(wide) == 16
    assert parts.share(0, 4, 3) == []
    with pytest.raises(parts.PartsRefused, match="part 4 of 4 does not exist"):
        parts.share(40, 4, 4)
    assert parts.object_name("acme", "e-1", 3) == "_audit-parts/acme/e-1/00003.part"
    with pytest.raises(parts.PartsRefused, match="is not an execution name"):
        parts.object_name("acme", "../acme", 0)  # never a path out of the parts' folder


def test_a_clean_log_merges_clean_and_the_merge_reads_only_past_the_parts(
    history, read_ranges, monkeypatch
):
    tlog.seal(history.tenant)
    size = history.audit("full")["verified_to"]  # its report: past the parts' checkpoint
    execution = _write_parts(history)
    read_ranges.clear()
    receipts_checked: list[tuple[int, int]] = []
    checked = receipts.checked

    def recorded(state, start, end):
        receipts_checked.append((start, end))
        return checked(state, start, end)

    monkeypatch.setattr(receipts, "checked", recorded)
    merged = _merge(history, execution)
    assert merged["findings"] == [] and merged["finding_count"] == 0
    covered = merged["summary"]["parts"]["entries"]
    assert covered == size > 0
    assert read_ranges == [(covered, merged["verified_to"])]
    assert receipts_checked == [(covered, merged["verified_to"])]
    assert merged["verified_to"] == size + 2  # the first run's report and its map commit


def test_the_merge_is_recorded_and_logged_as_any_run(history, superuser):
    merged = _parts_then_merge(history)
    with superuser.connect() as conn:
        mode, status = conn.execute(
            text("SELECT mode, status FROM audit_runs WHERE id = CAST(:i AS uuid)"),
            {"i": merged["id"]},
        ).one()
        logged = conn.execute(
            text(
                "SELECT count(*) FROM log_entries WHERE tenant_id = :t "
                "AND convert_from(body, 'UTF8') LIKE :run"
            ),
            {"t": history.tenant, "run": f"%{merged['id']}%"},
        ).scalar_one()
    assert (mode, status, logged) == ("full", "completed", 1)


def _versions_in_several_parts(history, entry_indices) -> tuple[str, int]:
    """The first skill amended until its versions lie in at least three parts (at this size
    the ranges are one or two entries wide); returns it and the log's size once sealed."""
    skill = history.skills[0]
    for version in range(2, 9):
        history.amend(skill, version, f"as of version {version + 1}")
    size = tlog.seal(history.tenant).checkpoint.size
    where = {i for i in range(COUNT) for low, high in parts.share(size, COUNT, i)
             for index in entry_indices(history.tenant, skill) if low <= index < high}  # fmt: skip
    assert len(where) >= 3, where
    return skill, size


def test_an_entity_whose_versions_span_parts_merges_alike(history, entry_indices):
    _versions_in_several_parts(history, entry_indices)
    assert _alike(history)[0] == []


def test_an_entity_spanning_parts_broken_at_a_parts_first_index_is_found_alike(
    history, attack, entry_indices
):
    """A version of an entity that lies in several parts, at the very first index of a part,
    linked to a forged digest: found by the merge's link across the boundary."""
    skill, size = _versions_in_several_parts(history, entry_indices)
    firsts = {parts.share(size, COUNT, i)[0][0] for i in range(1, COUNT)}
    boundary = next(i for i in entry_indices(history.tenant, skill)[1:] if i in firsts)
    attack(
        "UPDATE log_entries SET prev_digest = :d WHERE tenant_id = :t AND idx = :i",
        d=digests.sha256(b"forged"),
        t=history.tenant,
        i=boundary,
    )
    found, _ = _alike(history)
    assert [(f["kind"], f["log_index"]) for f in found] == [("chain_broken", boundary)]


def test_an_edited_entry_at_a_parts_first_index_is_found_alike(history, attack, entry_indices):
    skill, size = _versions_in_several_parts(history, entry_indices)
    firsts = {parts.share(size, COUNT, i)[0][0] for i in range(1, COUNT)}
    boundary = next(i for i in entry_indices(history.tenant, skill) if i in firsts)
    rewrite_body(attack, history.tenant, boundary, "as of version", "as of VERSION")
    found, _ = _alike(history)
    assert ("altered", boundary) in [(f["kind"], f["log_index"]) for f in found], found


def _edit_field(history, attack, entry_indices, superuser):
    first = entry_indices(history.tenant, history.skills[2])[0]
    rewrite_body(attack, history.tenant, first, "writes Rust", "writes COBOL")
    return {"altered"}


def _edit_with_locators(history, attack, entry_indices, superuser):
    first = entry_indices(history.tenant, history.skills[2])[0]
    attack(
        "UPDATE log_entries SET body = convert_to(replace(convert_from(body, 'UTF8'), "
        "'writes Rust', 'writes COBOL'), 'UTF8'), field_hashes = '\\x01ffff'::bytea "
        "WHERE tenant_id = :t AND idx = :i",
        t=history.tenant,
        i=first,
    )
    return {"altered"}


def _edit_bytes_digest_and_leaf(history, attack, entry_indices, superuser):
    index = entry_indices(history.tenant, history.skills[2])[0]
    body = tampering.stored_body(superuser, history.tenant, index)
    tampering.forge_entry(
        attack, history.tenant, index, body.replace(b"writes Rust", b"writes Ruby")
    )
    return {"altered"}


def _insert_past_the_size(history, attack, entry_indices, superuser):
    with superuser.connect() as conn:
        size = conn.execute(
            text("SELECT size FROM log_heads WHERE tenant_id = :t"), {"t": history.tenant}
        ).scalar_one()
    attack(
        "INSERT INTO log_entries (tenant_id, idx, entry_type, kind, entity_id, version, body, "
        "digest, leaf_hash, prev_digest, field_hashes, actor) SELECT tenant_id, :i, entry_type, "
        "kind, entity_id, 9, body, digest, leaf_hash, NULL, field_hashes, 'mallory' "
        "FROM log_entries WHERE tenant_id = :t AND idx = 0",
        t=history.tenant,
        i=size + 50,
    )
    return {"inserted"}


def _swap_indices(history, attack, entry_indices, superuser):
    return scan_attacks._swap_versions(history, attack, entry_indices)


def _resign_every_checkpoint(history, attack, entry_indices, superuser):
    """No checkpoint verifies: every part is empty, the merge reads the whole log."""
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
    return {"checkpoint_invalid"}


def _delete_the_newest_checkpoint(history, attack, entry_indices, superuser):
    """The parts cover the checkpoint before it; the anchor store names the rollback."""
    tlog.seal(history.tenant)
    with superuser.connect() as conn:
        newest = conn.execute(
            text("SELECT max(size) FROM checkpoints WHERE tenant_id = :t"), {"t": history.tenant}
        ).scalar_one()
    attack("DELETE FROM checkpoints WHERE tenant_id = :t AND size = :s", t=history.tenant, s=newest)
    return {"rollback"}


def _flip_a_certificate_byte(history, attack, entry_indices, superuser):
    tampering.flip_certificate_signature(superuser, attack, history.tenant)
    return {"certificate_invalid"}


def _delete_a_receipt(history, attack, entry_indices, superuser):
    index = entry_indices(history.tenant, history.skills[2])[1]
    attack(
        "DELETE FROM log_receipts WHERE tenant_id = :t AND first_idx = :i",
        t=history.tenant,
        i=index,
    )
    return {"receipt_missing"}


def _copy_another_entrys_receipt(history, attack, entry_indices, superuser):
    index = entry_indices(history.tenant, history.skills[2])[1]
    t = history.tenant
    attack("DELETE FROM log_receipts WHERE tenant_id = :t AND first_idx = :i", t=t, i=index)
    attack(
        "INSERT INTO log_receipts (tenant_id, first_idx, count, receipt, leaves) "
        "SELECT tenant_id, :i, count, receipt, leaves FROM log_receipts "
        "WHERE tenant_id = :t AND first_idx = 0",
        t=t,
        i=index,
    )
    return {"receipt_invalid"}


def _flip_a_receipt_signature_byte(history, attack, entry_indices, superuser):
    index = entry_indices(history.tenant, history.skills[0])[0]
    attack(
        "UPDATE log_receipts SET receipt = set_byte(receipt, length(receipt) - 1, "
        "get_byte(receipt, length(receipt) - 1) # 1) WHERE tenant_id = :t AND first_idx = :i",
        t=history.tenant,
        i=index,
    )
    return {"receipt_invalid"}


def _from_scan(attack_of):
    def made(history, attack, entry_indices, superuser):
        return attack_of(history, attack, entry_indices)

    made.__name__ = attack_of.__name__
    return made


@pytest.mark.parametrize(
    "tamper",
    [
        _edit_field,
        _edit_with_locators,
        _edit_bytes_digest_and_leaf,
        _insert_past_the_size,
        _swap_indices,
        _resign_every_checkpoint,
        _delete_the_newest_checkpoint,
        _flip_a_certificate_byte,
        _delete_a_receipt,
        _copy_another_entrys_receipt,
        _flip_a_receipt_signature_byte,
        _from_scan(scan_attacks._forge_link),
        _from_scan(scan_attacks._drop_link),
        _from_scan(scan_attacks._delete_version),
        _from_scan(scan_attacks._edit_digest_then_forge_link),
        _from_scan(scan_attacks._edit_head),
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_every_attack_is_found_alike_by_parts_and_merge(
    history, attack, entry_indices, superuser, tamper
):
    amend = history.amend(history.skills[2], 1, "writes Rust well")
    assert amend.body["versioning"]["version"] == 2
    tlog.seal(history.tenant)
    kinds = tamper(history, attack, entry_indices, superuser)
    found, _ = _alike(history)
    assert kinds <= {f["kind"] for f in found}, found
