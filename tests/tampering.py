"""Edits an attacker makes to the ledger in the tests, through the ``attack`` fixture (a
superuser with triggers and row-level security out of the way)."""

from __future__ import annotations

from collections.abc import Callable


def rewrite_body(attack: Callable[..., None], tenant: str, index: int, old: str, new: str) -> None:
    """In the stored bytes of one entry, replace the text ``old`` with ``new``."""
    attack(
        "UPDATE log_entries SET body = convert_to(replace(convert_from(body, 'UTF8'), "
        ":old, :new), 'UTF8') WHERE tenant_id = :t AND idx = :i",
        old=old,
        new=new,
        t=tenant,
        i=index,
    )
