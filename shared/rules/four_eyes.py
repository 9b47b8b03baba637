"""Four eyes on content (rule L0-06): nobody certifies content they wrote.

A version's *content* is what it says about its entity: its ``identity``, ``metadata`` and
``relationships`` sections, that is every client field and the entity's id, type and
tenant. The other sections of the hashed document are not content: ``lifecycle`` (the status
and its times), ``versioning`` and ``audit_trail`` (which change made the version, by whom
and why, and where it links) and ``constitutional_alignment`` (the server's rule results and
certification record). A status change, a certification or a suspension therefore writes a
version whose content is its predecessor's, and its author wrote no content.

The content's authors since it was last certified are the authors of version 1 when no
earlier version was certified, and of every version after the newest certified one whose
content differs from the version before it. Someone who changed the content and someone else
who changed it back both count. The certification API refuses a certifier who is one of them
(403), and an audit names every certificate in its range whose certifier is one of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from shared.rules.kinds import KINDS

RULE = "L0-06"
CONTENT_SECTIONS = ("identity", "metadata", "relationships")


# Per entity type, its derived fields (a team's agents): served, never written, so not
# content, though a team version written before they were derived may hold one.
_DERIVED = {kind.type: {f.name for f in kind.fields if f.derived} for kind in KINDS.values()}


def content(doc: dict[str, Any]) -> tuple[Any, ...]:
    """A version document's content sections, for comparison."""
    identity, relationships = doc.get("identity"), doc.get("relationships")
    kind = identity.get("entity_type") if isinstance(identity, dict) else None
    derived = _DERIVED.get(kind) if isinstance(kind, str) else None
    if derived and isinstance(relationships, dict):
        relationships = {k: v for k, v in relationships.items() if k not in derived}
    return identity, doc.get("metadata"), relationships


def content_authors(versions: Sequence[dict[str, Any]], certified: Iterable[int]) -> list[str]:
    """Who wrote or amended the content of the last of ``versions`` since it was last
    certified, in the order they did.

    Args:
        versions: the entity's version documents in version order, up to and including the
            one to be certified (a missing version makes the next one count as a change).
        certified: the numbers of the versions certificates were issued for before this one;
            those not below the last version are ignored.
    """
    if not versions:
        return []
    last = versions[-1]["versioning"]["version"]
    since = max((v for v in certified if v < last), default=0)
    authors: list[str] = []
    previous: tuple[Any, ...] | None = None
    expected = 1
    for doc in versions:
        record = doc["versioning"]
        number, now = record["version"], content(doc)
        changed = number != expected or previous is None or now != previous
        author = record.get("amended_by")
        if number > since and changed and author is not None and author not in authors:
            authors.append(author)
        previous, expected = now, number + 1
    return authors
