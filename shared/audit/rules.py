"""The rules pass: every current version with a relationship set still satisfies the
cross-entity rules, against the current versions of what it names."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.audit import versions
from shared.audit.state import AuditState, Summary
from shared.integrity import canonical
from shared.registry import documents
from shared.rules.kinds import kind_for_type
from shared.rules.relations import Ref, check_relations, uncertified_uses
from shared.storage import heads

# Write rules on a reference's status: checked when the version was written, and held
# afterwards only by certified versions (a reference leaving ``certified`` moves them too:
# ``shared.dependents``); a draft may keep a skill that was suspended after it was written.
_STATUS_RULES = ("L1-REF-02", "L1-JOBROLE-03")


class Rules:
    """What the rules need of the current versions: a reference's type, status and fields
    (only of the ``wanted`` ids), and the versions with relationships to check."""

    def __init__(self, wanted: set[str]) -> None:
        self.wanted = wanted
        self.refs: dict[str, Ref] = {}
        self.checks: list[tuple[str, str, str, int, dict[str, Any]]] = []

    def current(
        self,
        entity_id: str,
        kind: str,
        status: str,
        version: int,
        relations: dict[str, Any] | None,
    ) -> None:
        """A current version: kept as a reference if wanted, and checked if it has
        relationships and is not deprecated."""
        if entity_id in self.wanted:
            self.refs[entity_id] = Ref(entity_id, kind, status, relations or {})
        if relations is not None and status != "deprecated":
            self.checks.append((entity_id, kind, status, version, relations))


class RuleCalls:
    """``Rules.current`` as a worker sees it: the calls made, for the audit to make again in
    order."""

    def __init__(self, wanted: set[str]) -> None:
        self.wanted = wanted
        self.made: list[tuple[Any, ...]] = []

    def current(self, *args: Any) -> None:
        """Recorded, to be made again in the audit's process."""
        self.made.append(args)


def referenced(summaries: Iterable[Summary]) -> set[str]:
    """Every id the relationships of these version summaries name."""
    out: set[str] = set()
    for summary in summaries:
        if summary.relations is not None:
            out |= versions.ids(summary.kind, summary.relations)
    return out


def checked(state: AuditState, rules: Rules) -> None:
    """The cross-entity rules of every current version with a relationship set."""
    named = {i for check in rules.checks for i in versions.ids(check[1], check[4])}
    wanted = sorted(i for i in rules.wanted | named if i not in rules.refs)
    found = heads.referenced(state.conn, wanted, lock=False) if wanted else []
    for head, body in found:
        kind = kind_for_type(head.kind)
        rules.refs[head.entity_id] = Ref(
            head.entity_id,
            head.kind,
            head.status,
            documents.client_fields(kind, canonical.read(body)),
        )
    for entity_id, kind_type, status, version, fields in rules.checks:
        kind = kind_for_type(kind_type)
        certified = status == "certified"
        for v in check_relations(kind, fields, None, rules.refs, self_id=entity_id):
            if v.rule in _STATUS_RULES and not certified:
                continue
            state.add(
                "rule_violation",
                f"{v.field}: {v.message}",
                entity_type=kind_type,
                entity_id=entity_id,
                version=version,
                rule=v.rule,
                field=v.field,
            )
        if certified:
            for use in uncertified_uses(kind, fields, rules.refs):
                field = use.split("=", 1)[0]
                state.add(
                    "rule_violation",
                    f"{field}: certified, yet uses uncertified {use}",
                    entity_type=kind_type,
                    entity_id=entity_id,
                    version=version,
                    rule="L0-05",
                    field=field,
                )
