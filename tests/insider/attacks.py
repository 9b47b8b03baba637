"""The insider's attacks as data: a ``Case`` per row of the matrix (tests/insider/test_matrix.py),
and the helpers that build one from SQL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.insider.conftest import Tenant

Attack = Callable[[Tenant, Callable[..., None]], None]
Expect = Callable[[Tenant], dict[str, Any]]


@dataclass(frozen=True)
class Case:
    table: str
    name: str
    attack: Attack
    expect: Expect
    incremental: bool = True  # the first incremental audit sees it (else: full, then every one)
    short: bool = False
    undo: Attack | None = None  # a catalog attack is undone: the database is shared
    never: tuple[str, ...] = ()  # kinds the misnamed finding had: none may be reported
    extra: tuple[dict[str, Any], ...] = ()  # further findings each audit must name
    xfail: str | None = None  # not yet named as it should be: why (a strict expected failure)


def sql(statement: str, **fixed: Any) -> Attack:
    """An attack of one statement; ``:t`` is the tenant, other parameters from ``fixed``
    (a callable is called with the tenant)."""

    def run(t: Tenant, attack: Callable[..., None]) -> None:
        params = {k: v(t) if callable(v) else v for k, v in fixed.items()}
        attack(statement, t=t.name, **params)

    return run


def catalog(*statements: str) -> Attack:
    """Statements run one at a time (a prepared statement holds one)."""

    def run(t: Tenant, attack: Callable[..., None]) -> None:
        for statement in statements:
            attack(statement)

    return run


_SAVED: dict[str, str] = {}  # function definitions replaced by an attack, to restore


def replace_function(signature: str, replacement: str) -> Attack:
    """A function replaced, its definition kept (``pg_get_functiondef``) for ``_restore``."""

    def run(t: Tenant, attack: Callable[..., None]) -> None:
        _SAVED[signature] = t.one(
            "SELECT pg_get_functiondef(CAST(:f AS regprocedure))", f=signature
        )[0]
        attack(replacement)

    return run


def restore(signature: str) -> Attack:
    return lambda t, attack: attack(_SAVED.pop(signature))
