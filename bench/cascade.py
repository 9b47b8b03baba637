"""The certification cascade: amending a certified skill that N certified entities use (N/2
job roles requiring it, N/2 agents using it, each agent with a job role of its own), against
amending a certified skill in the same tenant that nothing uses (the floor: the same
transaction and dependents lookup, one entry written).

Between repeats the moved entities are made certified again by versions written straight
to the ledger (``ledger.append_all``), outside the timing; the fixture's certified versions
are written the same way (status and bytes as certification leaves them, without its
certificates, which the cascade never reads).
"""

from __future__ import annotations

import uuid
from typing import Any

from bench import common
from shared.registry import batches, reads, versions, writes
from shared.rules import kinds


def bench_cascade(count: int) -> dict[str, Any]:
    from shared.registry import certification, dependents
    from shared.security.principal import Principal

    tenant = f"c-{uuid.uuid4().hex[:10]}"
    author = Principal("bench", tenant, frozenset({"author"}))
    certifier = Principal("bench-certifier", tenant, frozenset({"certifier"}))

    def skill(name: str) -> str:
        body = {"name": name, "description": "d", "category": "technical"}
        made = writes.create(author, "skills", body, "bench")
        skill_id = made.body["identity"]["id"]
        certification.certify(certifier, "skills", skill_id, None, "bench")
        return skill_id

    used, unused = skill("used by many"), skill("used by none")
    industry = writes.create(author, "industries", {"name": "i", "description": "d"}, "b")
    industry_id = industry.body["identity"]["id"]
    half = count // 2
    roles = [
        item["id"]
        for item in batches.create_batch(
            author,
            "job-roles",
            [
                {
                    "name": f"role {i}",
                    "description": "d",
                    "required_skills": [used],
                    "seniority_level": "mid",
                }
                for i in range(half)
            ],
            "bench",
        )["items"]
    ]
    agents = [
        item["id"]
        for item in batches.create_batch(
            author,
            "agents",
            [
                {
                    "name": f"agent {i}",
                    "skill_id": used,
                    "job_role_id": role,
                    "industry_id": industry_id,
                }
                for i, role in enumerate(roles)
            ],
            "bench",
        )["items"]
    ]
    _certified(tenant, [industry_id, *roles, *agents])
    moved = [used, *roles, *agents]
    written: dict[str, int] = {}

    def amend(skill_id: str, again: list[str]) -> float:
        version = reads.get(author, "skills", skill_id).version
        body = {"description": uuid.uuid4().hex, "amendment_reason": "bench"}
        seconds = common.timed(
            lambda: written.__setitem__(
                skill_id,
                1
                + len(writes.amend(author, "skills", skill_id, body, f'"v{version}"', "b").cascade),
            )
        )
        _certified(tenant, again)
        return seconds

    product, floor = common.interleaved(lambda: amend(used, moved), lambda: amend(unused, [unused]))
    from shared.storage.engine import database

    with database().transaction(tenant) as conn:
        lookup = common.stats(
            [
                common.timed(
                    lambda: dependents.certified_dependents(conn, used, "pending_certification")
                )
                for _ in range(common.REPEATS)
            ]
        )
    per = (product["median"] - floor["median"]) / max(1, written[used] - 1) * 1000
    return common.result(
        f"amend a certified skill that {count:,} certified job roles and agents use",
        common.side(product, written[used], "entries/s", "writes.amend with its cascade"),
        common.side(floor, written[unused], "entries/s", "writes.amend, nothing depends on it"),
        operations=written[used],
        details=[
            f"entries written per amendment: {written[used]:,} with dependents, "
            f"{written[unused]} without",
            f"{per:.3f} ms per moved entity over the floor",
            f"dependents lookup alone (one read of the tenant's {count + 3:,} certified "
            f"heads): median {lookup['median'] * 1000:.1f} ms",
        ],
    )


def _certified(tenant: str, ids: list[str]) -> None:
    """Append a ``certified`` version of each of ``ids`` (outside any timing)."""
    from shared.integrity import canonical, digests
    from shared.registry import documents
    from shared.storage import heads, ledger
    from shared.storage.engine import database

    with database().transaction(tenant) as conn:
        ledger.lock_heads(conn, ids)
        items = []
        for head, body in heads.referenced(conn, ids, lock=False):
            kind = kinds.kind_for_type(head.kind)
            doc = canonical.read(body)
            items.append(
                versions.new_version(
                    tenant,
                    "bench-certifier",
                    kind,
                    versions.VersionWrite(
                        entity_id=head.entity_id,
                        head=head,
                        fields=documents.client_fields(kind, doc),
                        status="certified",
                        reason="bench: certified again",
                        action="certify",
                        request_id="bench",
                        certification=doc["constitutional_alignment"].get("certification"),
                        created_at=doc["lifecycle"]["created_at"],
                        previous_digest=digests.sha256(body),
                    ),
                )
            )
        ledger.append_all(conn, items)
