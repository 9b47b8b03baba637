"""Issue 20, attack 10: names compared as people read them (``shared/rules/names.py``).

With "Rust" taken, its look-alikes are refused as that skill through the real HTTP app:
created alone, renamed onto, or sent in a batch. Each is written here by code point, since the
point is that they look like "Rust". Two strings of the issue are not look-alikes of "Rust"
and are names of their own, as UTS #39 has it: Cyrillic ER ("\u0420ust") reads "Pust" (it is
refused beside "Pust"), and a visible combining accent ("Ru\u0301st") reads "Rúst"; an accent
that changes nothing a reader sees (the same letter composed, or U+034F) is refused.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import text

from shared import audit
from shared.security.principal import Principal
from tests.support.reliability_table import record

LOOK_ALIKES = {
    "Rust + ZERO WIDTH SPACE": "Rust\u200b",
    "SOFT HYPHEN inside": "Ru\u00adst",
    "FULLWIDTH LATIN CAPITAL LETTER R": "\uff32ust",
    "SCRIPT CAPITAL R": "\u211bust",
    "COMBINING GRAPHEME JOINER inside": "Ru\u034fst",
    "VARIATION SELECTOR-16 after": "Rust\ufe0f",
    "WORD JOINER inside": "Ru\u2060st",
    "Cyrillic DZE for s": "Ru\u0455t",
    "Greek UPSILON for u": "R\u03c5st",
    "capitals, Cyrillic TE for T": "RUS\u0422",
    "capitals, spaced": "  RUST  ",
}


def _skill(name: str) -> dict[str, Any]:
    return {"name": name, "description": "d", "category": "technical"}


def _log_size(superuser, tenant: str) -> int:
    with superuser.connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM log_entries WHERE tenant_id = :t"), {"t": tenant}
        ).scalar_one()


def _refused_as(response, holder: str, name: str, field: str = "name") -> None:
    assert response.status_code == 409, (response.status_code, response.json)
    assert response.mimetype == "application/problem+json"
    problem = response.json
    assert problem["existing_id"] == holder and problem["existing_name"] == name, problem
    assert [(v["rule"], v["field"]) for v in problem["violations"]] == [("L1-SKILL-02", field)]
    assert holder in problem["violations"][0]["message"] and repr(name) in problem["detail"]


def _clean_audit(tenant: str) -> None:
    run, _ = audit.run(Principal("audrey", tenant, frozenset({"auditor"})), {"mode": "full"})
    assert run["findings"] == [], run["findings"]


def test_look_alikes_of_a_taken_name_are_409_naming_it(
    registry_client, author, skill, superuser, tenant, request
):
    rust = skill("Rust")
    size = _log_size(superuser, tenant)
    refused = 0
    for name in LOOK_ALIKES.values():
        response = registry_client.post("/registry/skills", json=_skill(name), headers=author)
        _refused_as(response, rust, "Rust")
        refused += 1
    assert _log_size(superuser, tenant) == size  # nothing written
    record(
        request.node,
        "look-alike names",
        len(LOOK_ALIKES),
        f"{refused} of {len(LOOK_ALIKES)} refused with 409 naming the existing skill",
    )
    _clean_audit(tenant)


def test_unicode_security_examples_are_one_name(registry_client, author, skill):
    """UTS #39's own examples: "paypal" with a Cyrillic a, and the whole-script confusable
    "scope" in Cyrillic; the same letter composed or decomposed is one name too."""
    for taken, alike in (
        ("paypal", "p\u0430ypal"),
        ("scope", "\u0455\u0441\u043e\u0440\u0435"),
        ("HTML", "\u041d\u0422\u041cL"),
        ("R\u00fast", "Ru\u0301st"),
        ("Pust", "\u0420ust"),
    ):
        holder = skill(taken)
        response = registry_client.post("/registry/skills", json=_skill(alike), headers=author)
        _refused_as(response, holder, taken)


def test_renaming_onto_a_look_alike_is_409_and_writes_nothing(
    registry_client, author, skill, superuser, tenant
):
    rust, other = skill("Rust"), skill("Go")
    size = _log_size(superuser, tenant)
    for name in LOOK_ALIKES.values():
        renamed = registry_client.patch(
            f"/registry/skills/{other}",
            json={"name": name, "amendment_reason": "rename"},
            headers={**author, "If-Match": '"v1"'},
        )
        _refused_as(renamed, rust, "Rust")
    assert _log_size(superuser, tenant) == size
    # Its own look-alike is an ordinary amendment: the name is stored exactly as sent.
    own = registry_client.patch(
        f"/registry/skills/{rust}",
        json={"name": "\uff32ust", "amendment_reason": "fullwidth"},
        headers={**author, "If-Match": '"v1"'},
    )
    assert own.status_code == 200 and own.json["identity"]["name"] == "\uff32ust"


def test_a_batch_refuses_look_alikes_of_each_other_and_of_a_taken_name(
    registry_client, author, skill, superuser, tenant
):
    rust = skill("Rust")
    size = _log_size(superuser, tenant)
    inside = registry_client.post(
        "/registry/skills/batch",
        json={"items": [_skill("Perl"), _skill("P\u0435rl"), _skill("Lua"), _skill("LUA\u200b")]},
        headers=author,
    )
    assert inside.status_code == 422 and inside.mimetype == "application/problem+json"
    named = {(v["rule"], v["field"], v["message"]) for v in inside.json["violations"]}
    assert named == {
        ("L1-SKILL-02", "items[1].name", "same unique key as items[0]"),
        ("L1-SKILL-02", "items[3].name", "same unique key as items[2]"),
    }
    against = registry_client.post(
        "/registry/skills/batch",
        json={"items": [_skill("Perl"), _skill(LOOK_ALIKES["SCRIPT CAPITAL R"])]},
        headers=author,
    )
    _refused_as(against, rust, "Rust", "items[1].name")  # a batch names the item
    assert _log_size(superuser, tenant) == size  # all or nothing


def test_distinct_names_are_accepted_and_stored_as_written(
    registry_client, author, reader, skill, tenant
):
    """Names a reader tells apart stay apart, and every name is served exactly as sent;
    what UTS #39 reads alike ("Part II" and "Part 11") is one name."""
    written = [
        "Rust",
        "\u0420ust",  # Cyrillic ER: reads "Pust"
        "Ru\u0301st",  # a visible accent
        "C",
        "C#",
        "C++",
        "R",
        "K",
        "Go",
        "Python 2",
        "Python 3",
        "Caf\u00e9",
        "Cafe",
        "  Machine\u00a0learning ",
        "Part II",
    ]
    made = {name: skill(name) for name in written}
    for name, entity_id in made.items():
        got = registry_client.get(f"/registry/skills/{entity_id}", headers=reader)
        assert got.json["identity"]["name"] == name
    part = registry_client.post("/registry/skills", json=_skill("Part 11"), headers=author)
    _refused_as(part, made["Part II"], "Part II")
    _clean_audit(tenant)


def test_racing_look_alikes_leave_exactly_one_live_skill(
    registry_client, author, skill, superuser, tenant
):
    """No index refuses a look-alike: the write functions do, holding the tenant's log
    counter, so of look-alikes created at once (alone, grouped, or in a batch) one lands."""
    skill("warm-up")  # the tenant's log head exists before the race
    alikes = [*LOOK_ALIKES.values(), "Rust"]
    barrier = threading.Barrier(len(alikes) + 1)
    answers: list[int] = []

    def create(name: str) -> None:
        client = registry_client.application.test_client()
        barrier.wait()
        answers.append(
            client.post("/registry/skills", json=_skill(name), headers=author).status_code
        )

    def batch() -> None:
        client = registry_client.application.test_client()
        body = {"items": [_skill("Lua"), _skill("RU\u0405T")]}  # Cyrillic DZE
        barrier.wait()
        answers.append(client.post("/registry/skills/batch", json=body, headers=author).status_code)

    threads = [threading.Thread(target=create, args=(n,)) for n in alikes]
    threads.append(threading.Thread(target=batch))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [201] + [409] * len(alikes), answers
    with superuser.connect() as conn:
        live = conn.execute(
            text(
                "SELECT count(*) FROM entity_heads WHERE tenant_id = :t AND kind = 'skill' "
                "AND name <> 'warm-up'"
            ),
            {"t": tenant},
        ).scalar_one()
    assert live in (1, 2)  # one look-alike, and Lua when the batch won


def test_a_name_that_reads_longest_is_compared_and_never_a_500(registry_client, author, skill):
    """200 characters that NFKC makes 3,600 (U+FDFA): stored and compared like any name."""
    longest = "\ufdfa" * 200
    holder = skill(longest)
    again = registry_client.post("/registry/skills", json=_skill(longest), headers=author)
    _refused_as(again, holder, longest)
