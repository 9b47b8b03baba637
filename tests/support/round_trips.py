"""Counting what goes over the wire to PostgreSQL, below SQLAlchemy and pg8000's API: every
flush of a connection's socket is one burst of messages after which the client waits for
the server, i.e. one network round trip."""

from __future__ import annotations

from dataclasses import dataclass, field

import pg8000.core
import pytest


@dataclass
class Wire:
    round_trips: int = 0
    statements: list[str] = field(default_factory=list)


def watch(monkeypatch: pytest.MonkeyPatch) -> Wire:
    """Count round trips and record the statements sent (Parse and Query messages) until
    ``monkeypatch.undo()``."""
    wire = Wire()
    core = pg8000.core
    flush, parse, query = (
        core._flush,
        core.CoreConnection.send_PARSE,
        core.CoreConnection.send_QUERY,
    )

    def counted_flush(sock):
        wire.round_trips += 1
        return flush(sock)

    def recorded_parse(self, name, statement, *args, **kwargs):
        wire.statements.append(statement)
        return parse(self, name, statement, *args, **kwargs)

    def recorded_query(self, statement):
        wire.statements.append(statement)
        return query(self, statement)

    monkeypatch.setattr(core, "_flush", counted_flush)
    monkeypatch.setattr(core.CoreConnection, "send_PARSE", recorded_parse)
    monkeypatch.setattr(core.CoreConnection, "send_QUERY", recorded_query)
    return wire
