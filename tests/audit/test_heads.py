"""The entity_heads projection attacked as a superuser: the audit compares every head with
the ledger, whether it reuses the version the entries pass just checked or reads it again."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from shared.registry import reads, writes


def _entries(superuser, tenant: str, entity_id: str) -> list[tuple[int, str, int]]:
    with superuser.connect() as conn:
        return [
            (int(r[0]), r[1], int(r[2]))
            for r in conn.execute(
                text(
                    "SELECT idx, entry_type, version FROM log_entries WHERE tenant_id = :t "
                    "AND entity_id = CAST(:e AS uuid) ORDER BY idx"
                ),
                {"t": tenant, "e": entity_id},
            )
        ]


def _findings(run, kind: str) -> list[dict]:
    return [f for f in run["findings"] if f["kind"] == kind]


def test_a_head_moved_back_to_an_older_version_is_a_rollback_of_the_head(
    history, attack, superuser
):
    amended = history.skills[0]
    first = _entries(superuser, history.tenant, amended)[0]
    attack(
        "UPDATE entity_heads SET version = 1, log_index = :i "
        "WHERE tenant_id = :t AND entity_id = CAST(:e AS uuid)",
        i=first[0],
        t=history.tenant,
        e=amended,
    )
    run = history.audit("full")
    assert _findings(run, "inserted") == [], run["findings"]  # no genuine version is inserted
    found = _findings(run, "rollback")
    assert [
        (f["entity_id"], f["section"], f["field"], f["version"], f["ledger_version"]) for f in found
    ] == [(amended, "entity_heads", "version", 1, 2)], run["findings"]


def test_a_head_pointing_at_a_certificate_is_altered(history, attack, superuser):
    certified = history.skills[1]
    certificate = next(
        e for e in _entries(superuser, history.tenant, certified) if e[1] != "version"
    )
    attack(
        "UPDATE entity_heads SET log_index = :i "
        "WHERE tenant_id = :t AND entity_id = CAST(:e AS uuid)",
        i=certificate[0],
        t=history.tenant,
        e=certified,
    )
    run = history.audit("full")
    found = [f for f in _findings(run, "altered") if f.get("section") == "entity_heads"]
    assert [(f["entity_id"], f["field"]) for f in found] == [(certified, "log_index")]


def test_a_head_status_edited_is_altered_in_full_and_incremental_audits(history, attack, superuser):
    target = history.skills[2]
    attack(
        "UPDATE entity_heads SET status = 'certified' "
        "WHERE tenant_id = :t AND entity_id = CAST(:e AS uuid)",
        t=history.tenant,
        e=target,
    )
    run = history.audit("full")
    found = [f for f in _findings(run, "altered") if f.get("field") == "status"]
    assert [f["entity_id"] for f in found] == [target]
    # An incremental audit re-checks a head whose entity has a new version in its range.
    amended = history.skills[0]
    writes.amend(
        history.author,
        "skills",
        amended,
        {"description": "and tests it", "amendment_reason": "more"},
        '"v2"',
        "r",
    )
    attack(
        "UPDATE entity_heads SET status = 'suspended' "
        "WHERE tenant_id = :t AND entity_id = CAST(:e AS uuid)",
        t=history.tenant,
        e=amended,
    )
    run = history.audit("incremental")
    found = [f for f in _findings(run, "altered") if f.get("field") == "status"]
    assert amended in [f["entity_id"] for f in found], run["findings"]


def test_a_head_whose_version_or_kind_column_is_edited_is_altered(history, attack):
    """The head still points at the right entry; only a column it repeats was rewritten
    (the version up or down, the kind): each is named, with the ledger's value."""
    up, down, rekinded = history.skills
    edits = (
        ("version = version + 5", up),
        ("version = version - 1", down),
        ("kind = 'agent'", rekinded),
    )
    for change, entity_id in edits:
        attack(
            f"UPDATE entity_heads SET {change} "
            "WHERE tenant_id = :t AND entity_id = CAST(:e AS uuid)",
            t=history.tenant,
            e=entity_id,
        )
    run = history.audit("full")
    found = sorted(
        (f["entity_id"], f["field"], f["entity_type"])
        for f in _findings(run, "altered")
        if f.get("section") == "entity_heads"
    )
    assert found == sorted(
        [(up, "version", "skill"), (down, "version", "skill"), (rekinded, "kind", "skill")]
    ), run["findings"]


def test_a_head_planted_for_an_entity_never_logged_is_altered(history, attack, superuser):
    """A head for a new entity id, copied from a real one (so it points at that entity's
    entry, at its version, kind and status): the entry is someone else's."""
    planted = str(uuid.uuid4())
    attack(
        "INSERT INTO entity_heads (tenant_id, entity_id, kind, version, status, name, "
        "first_index, log_index, created_at, updated_at) "
        "SELECT tenant_id, CAST(:p AS uuid), kind, version, status, name, first_index, "
        "log_index, created_at, updated_at FROM entity_heads "
        "WHERE tenant_id = :t AND entity_id = CAST(:e AS uuid)",
        p=planted,
        t=history.tenant,
        e=history.skills[2],
    )
    run = history.audit("full")
    found = [f for f in _findings(run, "altered") if f.get("section") == "entity_heads"]
    assert [(f["entity_id"], f["field"]) for f in found] == [(planted, "log_index")], run[
        "findings"
    ]


_LISTED = [
    ("name = 'Haskell'", "name"),
    ("category = 'soft_skill'", "category"),
    ("category = NULL", "category"),
    ("unique_key = 'name:haskell'", "unique_key"),
    ("first_index = first_index + 1", "first_index"),
]


@pytest.mark.parametrize("mode", ["full", "incremental"])
@pytest.mark.parametrize(("change", "field"), _LISTED, ids=[c for c, _ in _LISTED])
def test_a_head_column_listings_and_uniqueness_use_is_checked(history, attack, change, field, mode):
    """Listings filter and page by a head's category, status and first index, and
    uniqueness is enforced on its unique_key: each, rewritten alone, is named with the
    ledger's value, in a full audit (from the entries pass's summary) and in an incremental
    one (the entity's first version lies before the range: read from the ledger)."""
    target = history.skills[0]
    if mode == "incremental":
        history.audit("full")
        writes.amend(
            history.author,
            "skills",
            target,
            {"description": "and reviews it", "amendment_reason": "more"},
            '"v2"',
            "r",
        )
    attack(
        f"UPDATE entity_heads SET {change} WHERE tenant_id = :t AND entity_id = CAST(:e AS uuid)",
        t=history.tenant,
        e=target,
    )
    run = history.audit(mode)
    found = [
        (f["entity_id"], f["field"])
        for f in _findings(run, "altered")
        if f.get("section") == "entity_heads"
    ]
    assert found == [(target, field)], run["findings"]


def test_heads_of_every_kind_agree_and_an_agents_unique_key_is_derived(history, attack):
    """Every kind's head as the registry writes it audits clean (an agent's unique key comes
    from its skill, job role and team; other kinds have none); rewriting it is named."""

    def create(slug: str, **fields) -> str:
        doc = writes.create(history.author, slug, fields, str(uuid.uuid4()))
        return doc.body["identity"]["id"]

    skill = history.skills[1]  # certified
    industry = create("industries", name="Retail", description="d")
    role = create(
        "job-roles",
        name="Dev",
        description="d",
        required_skills=[skill],
        seniority_level="senior",
        industry_id=industry,
    )
    team = create("teams", name="T", description="d", job_role_id=role)
    agent = create(
        "agents", name="A1", skill_id=skill, job_role_id=role, industry_id=industry, team_id=team
    )
    assert history.audit("full")["findings"] == []
    assert history.audit("incremental")["findings"] == []
    attack(
        "UPDATE entity_heads SET unique_key = 'x|y|-' "
        "WHERE tenant_id = :t AND entity_id = CAST(:e AS uuid)",
        t=history.tenant,
        e=agent,
    )
    run = history.audit("full")
    found = [
        (f["entity_id"], f["field"])
        for f in _findings(run, "altered")
        if f.get("section") == "entity_heads"
    ]
    assert found == [(agent, "unique_key")], run["findings"]


def test_an_incremental_audit_finds_the_heads_its_range_created_by_range_and_by_id(
    history, attack, monkeypatch
):
    """Heads of entities created since the last run are read by ranges of first index
    (two indexes a statement here); those of older entities amended since, and one whose
    first index was moved out of every range, are looked up by id (two a statement here);
    each edit is named."""
    from shared.audit import reads as audit_reads
    from shared.storage import copyread

    history.audit("full")
    created = [
        writes.create(
            history.author,
            "skills",
            {"name": f"New {n}", "description": "d", "category": "technical"},
            str(uuid.uuid4()),
        ).body["identity"]["id"]
        for n in range(5)
    ]
    for entity_id in history.skills:
        current = reads.get(history.author, "skills", entity_id).body["versioning"]
        writes.amend(
            history.author,
            "skills",
            entity_id,
            {"description": "again", "amendment_reason": "more"},
            f'"v{current["version"]}"',
            "r",
        )
    moved, recategorised, renamed = created[1], created[3], history.skills[2]
    for change, entity_id in (
        ("first_index = 0", moved),
        ("category = 'soft_skill'", recategorised),
        ("name = 'Elsewhere'", renamed),
    ):
        attack(
            f"UPDATE entity_heads SET {change} "
            "WHERE tenant_id = :t AND entity_id = CAST(:e AS uuid)",
            t=history.tenant,
            e=entity_id,
        )
    monkeypatch.setattr(copyread, "RANGE", 2)
    monkeypatch.setattr(audit_reads, "_BY_ID", 2)
    run = history.audit("incremental")
    found = sorted(
        (f["entity_id"], f["field"])
        for f in _findings(run, "altered")
        if f.get("section") == "entity_heads"
    )
    expected = [(moved, "first_index"), (recategorised, "category"), (renamed, "name")]
    assert found == sorted(expected), run["findings"]


def test_a_rewritten_head_column_of_any_length_is_named_in_a_short_finding(history, attack):
    target = history.skills[2]
    attack(
        "UPDATE entity_heads SET name = repeat('x', 100000) "
        "WHERE tenant_id = :t AND entity_id = CAST(:e AS uuid)",
        t=history.tenant,
        e=target,
    )
    run = history.audit("full")
    (found,) = [f for f in _findings(run, "altered") if f.get("section") == "entity_heads"]
    assert (found["entity_id"], found["field"]) == (target, "name")
    assert found["detail"].endswith("the ledger says Rust") and len(found["detail"]) < 200
