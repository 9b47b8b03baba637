"""Status lifecycle: draft -> pending_certification -> certified -> suspended | deprecated."""

from __future__ import annotations

STATUSES = ("draft", "pending_certification", "certified", "suspended", "deprecated")

# Transitions a client may ask for. ``certified`` is reached only through certification.
TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"pending_certification", "deprecated"}),
    "pending_certification": frozenset({"draft", "deprecated"}),
    "certified": frozenset({"suspended", "deprecated"}),
    "suspended": frozenset({"pending_certification", "deprecated"}),
    "deprecated": frozenset(),
}


def after_amendment(status: str) -> str:
    """Any new version of the content returns the entity to pending_certification
    (a draft stays a draft until its author submits it)."""
    return "draft" if status == "draft" else "pending_certification"


def allowed(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())
