"""`kill -9` of the whole server (plant serve's process group) in the middle of
concurrent writes, three times over (up to eight while no kill has yet caught a request in
flight: one that lands between two requests proves nothing): every write acknowledged with a
2xx survives exactly as acknowledged, nothing is half-written, and a full audit finds
nothing."""

from __future__ import annotations

import random
import time

from tests.support.load import Writers
from tests.support.plant_server import Ack, call, check_ledger
from tests.support.reliability_table import record

KILLS = 3
MAX_KILLS = 8  # more rounds only while no kill has yet cut a request in flight


def test_kill_9_mid_write_loses_no_acknowledged_write(
    serve, owner_engine, tenant, make_token, request
):
    server = serve()
    writers = Writers(server.base, make_token(tenant, "author", "reader", subject="alice"))
    cut = 0  # requests in flight when the server died: sent before the kill, never answered
    kills = 0
    while kills < KILLS or (cut == 0 and kills < MAX_KILLS):
        kills += 1
        before, first = writers.acknowledged(), len(writers.replies)
        writers.start()
        deadline = time.monotonic() + 30
        while writers.acknowledged() < before + 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(random.uniform(0.2, 0.8))
        killed_at = time.monotonic()
        server.kill9()
        writers.stop()
        cut += sum(1 for s in writers.replies[first:] if s.reply.status == 0 and s.sent < killed_at)
        server.start()
    # The restarted server takes writes again.
    writers.start()
    time.sleep(0.5)
    writers.stop()

    answered = [s for s in writers.replies if s.reply.status != 0]
    wrong = [(s.request, s.reply.status, s.reply.body) for s in answered if not s.reply.ok]
    assert wrong == [], wrong[:5]
    assert cut >= 1, f"no request was in flight at any of {kills} kills: the test proved nothing"
    problems, lost = check_ledger(owner_engine(server.database_url), tenant, writers.acks)
    auditor = make_token(tenant, "auditor", subject="audrey")
    audit = call(server.base, "POST", "/audit/runs", auditor, {"mode": "full"})
    record(
        request.node,
        "server kill -9 (process group) during concurrent writes",
        kills,
        f"{len(writers.acks)} acknowledged writes all present byte for byte, {cut} in-flight "
        f"requests cut, no half-written version; full audit: "
        f"{len(audit.body.get('findings', [])) if audit.ok else audit.status} findings",
        lost,
    )
    assert problems == [], problems[:10]
    assert audit.status == 201, audit.body
    assert audit.body["status"] == "completed" and audit.body["findings"] == [], audit.body
    assert audit.body["verified_to"] >= len(writers.acks)
    # The check itself can fail: an acknowledgement the ledger does not hold is counted lost.
    forged = Ack(writers.acks[0].entity_id, 99, writers.acks[0].body, writers.acks[0].receipt)
    assert check_ledger(owner_engine(server.database_url), tenant, [forged])[1] == 1
