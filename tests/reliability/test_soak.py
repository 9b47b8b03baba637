"""A bounded soak: 16 client threads against the real server with mixed reads, writes,
certifications and audits for PLANT_SOAK_SECONDS (15 s in the default suite, 300 s in
`make test-reliability`). No request may fail, the server's memory must stay flat after
warm-up, every audit along the way and the full one at the end must find nothing, and every
acknowledged write must be in the ledger exactly as acknowledged."""

from __future__ import annotations

import random
import statistics
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from tests.support.load import soak_seconds
from tests.support.plant_server import Ack, PlantServer, Reply, ack_of, call, check_ledger
from tests.support.reliability_table import record

CLIENTS = 16
# Resident memory of the server's process tree (plant serve: one process) may
# grow by at most this much between the end of warm-up and the end of the run. The tree
# sits near 200 MiB; the pool (8 connections) and the thread count (8) are fixed, so what
# is left to grow is caches and the allocator's arenas, a few MiB. A leak of 1 KiB per
# request crosses the bound within the 5-minute run (~30,000 requests on 2 cores).
MAX_GROWTH = 30 * 1024 * 1024
SAMPLE_EVERY = 0.5


@dataclass
class Owned:
    """An entity a client thread created: only that thread writes or certifies it."""

    id: str
    version: int = 1
    certified: bool = False


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[tuple[str, int, object]] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    audits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, op: str, reply: Reply, expected: set[int]) -> bool:
        with self.lock:
            self.latencies.append(reply.seconds)
            self.counts[op] += 1
            if reply.status not in expected:
                self.errors.append((op, reply.status, reply.body))
                return False
            return True


class Client:
    def __init__(self, server: PlantServer, tokens: dict[str, str], tally: Tally, seed: int):
        self.base, self.tokens, self.tally = server.base, tokens, tally
        self.rng = random.Random(seed)
        self.owned: list[Owned] = []

    def _call(self, op: str, role: str, method: str, path: str, body=None, expected=(200,), **h):
        reply = call(self.base, method, path, self.tokens[role], body, h)
        return reply if self.tally.note(op, reply, set(expected)) else None

    def step(self) -> None:
        r = self.rng.random()
        if not self.owned or r < 0.25:
            return self.create()
        entity = self.rng.choice(self.owned)
        if r < 0.35:
            return self.amend(entity)
        if r < 0.45:
            uncertified = [e for e in self.owned if not e.certified]
            return self.certify(self.rng.choice(uncertified) if uncertified else entity)
        if r < 0.47:
            return self.audit()
        return self.read(entity, r)

    def _written(self, reply: Reply | None, doc_key: str | None = None) -> dict | None:
        if reply is None:
            return None
        doc = reply.body[doc_key] if doc_key else reply.body
        with self.tally.lock:  # a certification's version receipt sits beside its entity
            self.tally.acks.append(ack_of({**doc, "receipt": reply.body["receipt"]}))
        return doc

    def create(self) -> None:
        body = {
            "name": f"s-{uuid.uuid4().hex[:12]}",
            "description": "soak",
            "category": "technical",
        }
        doc = self._written(self._call("create", "author", "POST", "/registry/skills", body, {201}))
        if doc:
            self.owned.append(Owned(doc["identity"]["id"]))

    def amend(self, entity: Owned) -> None:
        body = {"description": f"amended {uuid.uuid4().hex[:6]}", "amendment_reason": "soak"}
        path = f"/registry/skills/{entity.id}"
        reply = self._call(
            "amend", "author", "PATCH", path, body, **{"If-Match": f'"v{entity.version}"'}
        )
        doc = self._written(reply)
        if doc:
            entity.version, entity.certified = doc["versioning"]["version"], False

    def certify(self, entity: Owned) -> None:
        if entity.certified:
            return self.read(entity, 0.5)
        reply = self._call(
            "certify", "certifier", "POST", f"/certify/skills/{entity.id}", None, {201}
        )
        doc = self._written(reply, "entity")
        if doc:
            entity.version, entity.certified = doc["versioning"]["version"], True
        return None

    def audit(self) -> None:
        reply = self._call(
            "audit", "auditor", "POST", "/audit/runs", {"mode": "incremental"}, {200, 201}
        )
        if reply is None:
            return
        run = reply.body
        findings = run.get("findings") or []
        with self.tally.lock:
            self.tally.audits += 1
            if run["status"] not in ("running", "completed"):
                self.tally.errors.append(("audit", reply.status, run))
            elif findings:  # e.g. a write committed mid-audit counted as past the log's size
                self.tally.errors.append(("audit", reply.status, findings))

    def read(self, entity: Owned, r: float) -> None:
        choice = int(r * 1000) % 5
        if choice == 0:
            self._call("read", "reader", "GET", "/registry/skills?limit=20")
        elif choice == 1:
            self._call("read", "reader", "GET", f"/registry/skills/{entity.id}")
        elif choice == 2:
            self._call("read", "reader", "GET", f"/registry/skills/{entity.id}/versions")
        elif choice == 3 and entity.certified:  # certifying sealed a checkpoint over v1
            self._call("read", "reader", "GET", f"/registry/skills/{entity.id}/versions/1/proof")
        else:
            self._call("read", "reader", "GET", "/log/checkpoint")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def test_soak_mixed_load_no_errors_flat_memory_clean_audit(
    serve, owner_engine, tenant, make_token, request
):
    seconds = soak_seconds(15)
    server = serve()
    tokens = {
        "author": make_token(tenant, "author", "reader", subject="alice"),
        "certifier": make_token(tenant, "certifier", "reader", subject="carol"),
        "auditor": make_token(tenant, "auditor", "reader", subject="audrey"),
        "reader": make_token(tenant, "reader", subject="rita"),
    }
    sealed = call(server.base, "POST", "/log/seal", tokens["auditor"])  # GET /log/checkpoint
    assert sealed.ok, sealed.body
    tally = Tally()
    stop = threading.Event()
    samples: list[tuple[float, int]] = []

    def client(seed: int) -> None:
        c = Client(server, tokens, tally, seed)
        while not stop.is_set():
            c.step()

    def sample() -> None:
        while not stop.wait(SAMPLE_EVERY):
            samples.append((time.monotonic(), server.rss()))

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
    sampler = threading.Thread(target=sample, daemon=True)
    started = time.monotonic()
    for thread in [*threads, sampler]:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in [*threads, sampler]:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a client thread hung"

    warm = started + max(3.0, seconds * 0.2)  # imports, pool, caches and arenas filled
    after_warmup = [rss for t, rss in samples if warm <= t < warm + max(2.0, seconds * 0.1)]
    at_end = [rss for _, rss in samples[-max(4, len(samples) // 10) :]]
    baseline, final = statistics.median(after_warmup), statistics.median(at_end)
    growth = final - baseline

    problems, lost = check_ledger(owner_engine(server.database_url), tenant, tally.acks)
    audit = call(server.base, "POST", "/audit/runs", tokens["auditor"], {"mode": "full"})
    total = sum(tally.counts.values())
    p50, p99 = _percentile(tally.latencies, 0.50), _percentile(tally.latencies, 0.99)
    mib = 1024 * 1024
    summary = (
        f"{seconds:.0f} s, {CLIENTS} clients: {total} requests "
        f"({', '.join(f'{k} {v}' for k, v in sorted(tally.counts.items()))}), "
        f"{len(tally.errors)} errors ({tally.audits} incremental audits, "
        f"{sum(1 for op, *_ in tally.errors if op == 'audit')} failed or found something); "
        f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms; "
        f"server RSS {baseline / mib:.0f} -> {final / mib:.0f} MiB after warm-up "
        f"(bound +{MAX_GROWTH // mib} MiB); full audit: "
        f"{len(audit.body.get('findings', [])) if audit.ok else audit.status} findings"
    )
    print(summary)
    record(request.node, "soak: mixed reads, writes, certifications, audits", total, summary, lost)
    assert tally.errors == [], [(op, status, str(body)[:300]) for op, status, body in tally.errors]
    assert tally.counts["create"] and tally.counts["certify"] and tally.counts["audit"]
    assert problems == [], problems[:10]
    assert growth < MAX_GROWTH, f"RSS grew {growth / mib:.1f} MiB after warm-up: {summary}"
    assert audit.status == 201 and audit.body["findings"] == [], audit.body
