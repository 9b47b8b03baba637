"""The heads the heads pass must look at (issue 27, decision 3): of a batch as read, all but
those whose check would do nothing, left out before the per-head loop. At a million heads
that loop (a dictionary look-up, seven columns compared, the name's key derived) was most of
the pass; the plain heads, nearly all, are now compared in C (``heads_to_check`` in
native/head_checks.c).

A head is left out only when checking it (``one_head._head``) would find nothing and hand
nothing on: it points at the version the entries pass summarised, whose version 1 that pass
read, that version has no relationships, no rule wants its entity and no other range holds it
(``shared``), and the head repeats that version's columns and unique key. Checked or not, such
a head adds no finding, so the audit finds the same in the same order. The C leaves out only
heads of a skill named in ASCII (its key compiled, ``name_keys``) and of exact plain types;
``plain`` below, its twin, any kind. Where ``map_memory.NATIVE`` is None, ``plain`` decides.
tests/audit/test_plain_heads.py holds the two to the same heads; tests/audit/
test_compiled_twin.py the audit's findings.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any

from shared.audit import name_keys, versions
from shared.audit.state import Summaries
from shared.integrity import map_memory


def to_check(
    batch: list[tuple[Any, ...]], latest: Summaries, wanted: Set[str], shared: Set[str]
) -> list[tuple[Any, ...]]:
    """The heads of ``batch`` (as ``heads.reading._HEADS`` reads them, the entity id as bytes) that
    are not ``plain``, in order: those the pass checks one by one."""
    native = map_memory.NATIVE
    if native is not None:
        found: list[tuple[Any, ...]] = native.heads_to_check(
            batch, latest, wanted, shared, *name_keys._tables()
        )
        return found
    return [head for head in batch if not plain(head, latest, wanted, shared)]


def plain(head: tuple[Any, ...], latest: Summaries, wanted: Set[str], shared: Set[str]) -> bool:
    """Whether checking ``head`` would do nothing: it points at the summarised version, with
    no relationships, of an entity no rule wants and no other range holds, whose version 1
    the entries pass read, and repeats what that version says (``one_head._against_summary``
    finds nothing, ``one_head._head`` hands nothing on)."""
    entity_id = head[3].decode()
    known = latest.get(entity_id)
    if (
        known is None
        or known.log_index != head[1]
        or known.first is None
        or known.relations is not None
        or entity_id in wanted
        or entity_id in shared
    ):
        return False
    said = (head[0], head[4], head[5], head[6], head[7], head[2], head[8])
    return said == (
        known.version, known.kind, known.status, known.name, known.category, known.first,
        versions.expected_key(known.kind, known.name, None),
    )  # fmt: skip
