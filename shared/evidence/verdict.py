"""What `plant verify` found: each check as a named item, and what the bundle proves or not."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Item:
    name: str
    ok: bool
    message: str


@dataclass
class VerificationReport:
    """Every check made, with the claims the bundle proves and those it does not prove even
    then (both reported only if every check holds: a bundle that fails one proves nothing)."""

    items: list[Item] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)
    not_proven: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.items) and all(i.ok for i in self.items)

    @property
    def failures(self) -> list[Item]:
        return [i for i in self.items if not i.ok]

    @property
    def proven(self) -> list[str]:
        """The claims, when every check holds; nothing is proven by a bundle that fails one."""
        return list(self.claims) if self.ok else []

    def add(self, name: str, ok: bool, message: str) -> bool:
        self.items.append(Item(name, ok, message))
        return ok

    def fail(self, name: str, message: str) -> None:
        self.add(name, False, message)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": len(self.items),
            "failed": len(self.failures),
            "failures": [{"item": i.name, "message": i.message} for i in self.failures],
            "proven": self.proven,
            "not_proven": list(self.not_proven) if self.ok else [],
        }

    def lines(self) -> list[str]:
        """The report as `plant verify` prints it."""
        out = [f"FAIL  {i.name}: {i.message}" for i in self.failures]
        if not self.ok:
            out.append("PROVEN: nothing (a check failed)")
            out.append(f"NOT VERIFIED: {len(self.failures)} of {len(self.items)} checks fail")
            return out
        out += ["PROVEN (with the keys you pinned):", *(f"  - {c}" for c in self.proven)]
        if self.not_proven:
            out += ["NOT PROVEN:", *(f"  - {c}" for c in self.not_proven)]
        out.append(f"VERIFIED: {len(self.items)} of {len(self.items)} checks hold")
        return out
