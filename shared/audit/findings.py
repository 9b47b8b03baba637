"""What an audit can find, named precisely enough for an auditor to act on."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

KINDS = (
    "altered",
    "missing",
    "inserted",
    "reordered",
    "chain_broken",
    "checkpoint_invalid",
    "signature_invalid",
    "certificate_invalid",
    "rollback",
    "rule_violation",
    # the database's own defences (``defences``)
    "table_replaced",
    "trigger_disabled",
    "rls_disabled",
    "shadowed",
    "function_changed",
    # signed write receipts (``receipts``)
    "receipt_missing",
    "receipt_invalid",
    # the map of heads (``map_check``)
    "map_invalid",
)


@dataclass(frozen=True)
class Finding:
    """One thing that is not as the log says it should be.

    ``section`` and ``field`` name what changed for an alteration (e.g. ``metadata`` and
    ``description``); ``rule`` names the broken rule for a rule violation.
    """

    kind: str
    tenant: str
    detail: str
    entity_type: str | None = None
    entity_id: str | None = None
    version: int | None = None
    log_index: int | None = None
    section: str | None = None
    field: str | None = None
    rule: str | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown finding kind {self.kind}")

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "tenant": self.tenant,
            "entity_type": self.entity_type,
            "entity_id": self.entity_id,
            "version": self.version,
            "log_index": self.log_index,
            "section": self.section,
            "field": self.field,
            "rule": self.rule,
            "detail": self.detail,
        }
        out.update(self.extra)
        return out
