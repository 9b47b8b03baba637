"""Client threads that keep writing until told to stop, remembering every acknowledged write."""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass, field

from tests.support.plant_server import Ack, Reply, ack_of, call


@dataclass
class Sent:
    request: str
    sent: float  # time.monotonic()
    answered: float
    reply: Reply


@dataclass
class Writers:
    """``count`` threads creating skills and amending each one they created once, against
    ``base`` (a restarted server keeps its port, so the same threads can be started again)."""

    base: str
    token: str
    count: int = 6
    acks: list[Ack] = field(default_factory=list)
    replies: list[Sent] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(self.count)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in self._threads), "a writer thread hung"

    def acknowledged(self) -> int:
        with self._lock:
            return len(self.acks)

    def _send(self, method: str, path: str, body: dict, expected: int, **headers: str) -> Reply:
        sent = time.monotonic()
        reply = call(self.base, method, path, self.token, body, headers)
        with self._lock:
            self.replies.append(Sent(f"{method} {path}", sent, time.monotonic(), reply))
            if reply.status == expected:
                self.acks.append(ack_of(reply.body))
        return reply

    def _run(self, n: int) -> None:
        while not self._stop.is_set():
            name = f"w{n}-{uuid.uuid4().hex[:12]}"
            created = self._send(
                "POST",
                "/registry/skills",
                {"name": name, "description": f"written by writer {n}", "category": "technical"},
                201,
            )
            if not created.ok:
                time.sleep(0.05)  # the server or its database is down: do not spin
            if created.status != 201 or self._stop.is_set():
                continue
            entity = created.body["identity"]["id"]
            self._send(
                "PATCH",
                f"/registry/skills/{entity}",
                {"description": f"amended by writer {n}", "amendment_reason": "soak"},
                200,
                **{"If-Match": '"v1"'},
            )


def soak_seconds(default: float) -> float:
    """How long the load test runs: PLANT_SOAK_SECONDS (`make test-reliability`) or ``default``."""
    return float(os.environ.get("PLANT_SOAK_SECONDS") or default)
