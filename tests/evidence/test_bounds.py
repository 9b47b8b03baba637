"""Exports within bounds (issue 20, attack 6): a PDF has a stated maximum size, a cap on
concurrent exports per process answers 503 + Retry-After before any work, a slot is never
leaked, and the work stops once the client has gone, against a real `plant serve`."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import text

from tests.support.reliability_table import record
from tests.support.seeding import seed_skills

SEEDED = 20_000  # entities of the real server's tenant: a PDF of seconds, a JSON of ~15 MB
STOP_BOUND = 5.0  # seconds from the client's close to the export's transaction gone


@pytest.fixture
def export_settings(monkeypatch: pytest.MonkeyPatch):
    """Set export settings (PLANT_EXPORT_*) for this test's in-process functions."""
    from shared import config
    from shared.evidence import slots as export_slots

    def apply(**env: object) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, str(value))
        config.settings.cache_clear()
        export_slots.slots.cache_clear()

    yield apply
    # Before monkeypatch restores the environment: the next read sees the restored one.
    config.settings.cache_clear()
    export_slots.slots.cache_clear()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _checkpoints(superuser, tenant: str) -> int:
    with superuser.connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM checkpoints WHERE tenant_id = :t"), {"t": tenant}
        ).scalar_one()


# ---- in process: the PDF's maximum, the cap and its release ----------------------------------


def test_a_pdf_above_the_stated_size_is_the_summary_edition_saying_so(
    request, export_client, seeded, make_token, export_settings
):
    """Five entities, a stated size of four: the PDF is the summary edition (cover, summary,
    exceptions, findings, how to verify), its cover naming the size and where the full table
    is; CSV and JSON stay complete; at the stated size the PDF lists every entity."""
    import io

    from pypdf import PdfReader

    export_settings(PLANT_EXPORT_PDF_MAX_ENTITIES=4)
    headers = _auth(make_token(seeded.tenant, "auditor"))
    response = export_client.get("/export/report?format=pdf", headers=headers)
    assert response.status_code == 200, response.get_data()
    pages = [p.extract_text() for p in PdfReader(io.BytesIO(response.get_data())).pages]
    cover = " ".join(pages[0].split())
    for words in ("summary: 5 entities are in scope", "more than the 4", "CSV and JSON"):
        assert words in cover, cover
    everything = "".join(pages)
    assert "Exceptions" in everything and "skill 3" not in everything
    csv_body = export_client.get("/export/report?format=csv", headers=headers).get_data()
    assert len(csv_body.decode().strip().splitlines()) == 1 + 5
    export_settings(PLANT_EXPORT_PDF_MAX_ENTITIES=5)
    response = export_client.get("/export/report?format=pdf", headers=headers)
    assert response.status_code == 200 and response.get_data().startswith(b"%PDF-")
    full = "".join(p.extract_text() for p in PdfReader(io.BytesIO(response.get_data())).pages)
    assert "skill 3" in full and "full: all 5 entities" in full
    record(request.node, "export: PDF above the stated size", 1, "the summary edition, "
           "saying so on its cover; the full table left to CSV/JSON/bundle")  # fmt: skip


def test_an_export_beyond_the_cap_is_503_with_retry_after_before_any_work(
    request, export_client, seeded, make_token, export_settings, superuser
):
    """One slot: while an export is open (its body never read), the next report and the next
    bundle get 503 + Retry-After and the bundle seals nothing; closing the unread response
    gives the slot back."""
    export_settings(PLANT_EXPORT_CONCURRENCY=1)
    headers = _auth(make_token(seeded.tenant, "auditor"))
    held = export_client.get("/export/report?format=json", headers=headers)
    assert held.status_code == 200
    sealed = _checkpoints(superuser, seeded.tenant)
    for path in ("/export/report?format=csv", "/export/bundle"):
        refused = export_client.get(path, headers=headers)
        assert refused.status_code == 503, (path, refused.get_data())
        assert refused.mimetype == "application/problem+json"
        assert int(refused.headers["Retry-After"]) > 0
        assert "PLANT_EXPORT_CONCURRENCY" in refused.json["detail"]
        assert refused.json["limit"] == 1
    assert _checkpoints(superuser, seeded.tenant) == sealed  # the refused bundle sealed nothing
    held.close()  # the body was never iterated: the slot comes back all the same
    again = export_client.get("/export/report?format=csv", headers=headers)
    assert again.status_code == 200 and len(again.get_data().splitlines()) == 6
    record(request.node, "export: N+1 concurrent exports", 2, "503 + Retry-After problem+json, "
           "before any work (no seal); slot back when the unread response closes")  # fmt: skip


def test_a_failed_export_never_keeps_its_slot(
    request, export_client, seeded, make_token, export_settings, monkeypatch
):
    """One slot, and exports that fail every way (bad query, unknown entity, an error
    mid-stream): after each, the next export still gets the slot."""
    from shared.evidence import reports

    export_settings(PLANT_EXPORT_CONCURRENCY=1, PLANT_EXPORT_PDF_MAX_ENTITIES=1)
    headers = _auth(make_token(seeded.tenant, "auditor"))
    failing = {
        "/export/report?format=xml": 422,
        f"/export/bundle?entity={uuid.uuid4()}": 404,
    }
    for path, status in failing.items():
        assert export_client.get(path, headers=headers).status_code == status, path
        served = export_client.get("/export/report", headers=headers)
        assert served.status_code == 200, path
        assert json.loads(served.get_data())["summary"]["total"] == 5  # read whole: completed

    real_rows = reports.rows

    def broken(conn, q):
        rows = real_rows(conn, q)
        yield next(rows)
        yield next(rows)
        raise RuntimeError("the export broke mid-stream")

    monkeypatch.setattr(reports, "rows", broken)
    # The report is spooled (and its envelope signed) before the first byte is sent, so an
    # error while it is generated is a 500 problem, not a stream cut short.
    broken_response = export_client.get("/export/report?format=csv", headers=headers)
    assert broken_response.status_code == 500
    assert broken_response.mimetype == "application/problem+json"
    monkeypatch.setattr(reports, "rows", real_rows)
    response = export_client.get("/export/report?format=csv", headers=headers)
    assert response.status_code == 200 and len(response.get_data().splitlines()) == 6
    record(request.node, "export: slot after a failed export", len(failing) + 1,
           "released after 422, 404 and an error while generating")  # fmt: skip


# ---- a real `plant serve`: the client leaves, slow readers hold the cap -----------------------


@pytest.fixture(scope="module")
def big(database_url, tmp_path_factory):
    """A real `plant serve` (2 export slots, PDFs up to SEEDED entities) whose tenant holds
    SEEDED skills; its superuser engine; the tenant."""
    import os
    from pathlib import Path

    from tests.support.databases import create_database, superuser_engine
    from tests.support.plant_server import PlantServer

    url = create_database(os.environ["PLANT_TEST_SERVER_URL"], "plant_exp")
    server = PlantServer(
        database_url=url,
        data_dir=Path(os.environ["PLANT_DATA_DIR"]),
        log_dir=tmp_path_factory.mktemp("export-server"),
        env={"PLANT_EXPORT_CONCURRENCY": "2", "PLANT_EXPORT_PDF_MAX_ENTITIES": str(SEEDED)},
    )
    engine = superuser_engine(url)
    try:
        server.start()
        tenant = f"t-{uuid.uuid4().hex[:12]}"
        for start in range(0, SEEDED, 10_000):
            seed_skills(engine, tenant, start, 10_000)
        yield server, engine, tenant
    finally:
        server.stop()
        engine.dispose()


def _send(server, token: str, path: str, receive_buffer: int | None = None) -> socket.socket:
    """A raw GET on a socket of its own (a small receive buffer makes a slow reader)."""
    sock = socket.socket()
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(60)
    sock.connect(("127.0.0.1", server.port))
    request = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n"
    sock.sendall(request.encode())
    return sock


def _read_status(sock: socket.socket, at_least: int = 0) -> int:
    """The response's status, reading until the head and ``at_least`` bytes have come."""
    data = b""
    while b"\r\n\r\n" not in data or len(data) < at_least:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection: {data[:200]!r}"
        data += chunk
    return int(data.split(b" ", 2)[1])


def _open_transactions(engine) -> list[tuple]:
    """The server's connections inside a transaction (an export holds one while it runs);
    autovacuum's workers, which have transactions of their own after the seeding, are not."""
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT pid, state, left(query, 60) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend' AND xact_start IS NOT NULL"
            )
        ).all()


def _waited(condition: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until ``condition`` held, or None if it did not within ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def _export_lines(server) -> list[dict]:
    """The server's log lines about exports ending (``shared.evidence.slots``)."""
    lines = server._log("out").read_text(errors="replace").splitlines()
    return [e for e in map(_json_or_none, lines) if e and "outcome" in e and "export" in e]


def _json_or_none(line: str) -> dict | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def _left(server, what: str, before: int, count: int = 1) -> bool:
    """At least ``count`` exports ``what`` logged, after line ``before``, that their client left
    (the slot is released before that line is written)."""
    lines = _export_lines(server)[before:]
    return count <= sum(
        e["export"] == what and e["outcome"] == "stopped: the client went away" for e in lines
    )


def test_a_client_leaving_mid_pdf_stops_the_rendering(request, big, make_token):
    """The client asks for a PDF of 20,000 entities and leaves while it renders: within
    STOP_BOUND seconds the export's transaction is gone and the server says it stopped."""
    server, engine, tenant = big
    before = len(_export_lines(server))
    sock = _send(server, make_token(tenant, "auditor"), "/export/report?format=pdf")
    assert _waited(lambda: bool(_open_transactions(engine)), 30) is not None, "never started"
    time.sleep(1.5)  # past the summary and the first batch, into the rendering
    sock.close()
    stopped = _waited(lambda: not _open_transactions(engine), STOP_BOUND * 4)
    assert stopped is not None and stopped < STOP_BOUND, (
        f"the PDF's transaction was still open {stopped or STOP_BOUND * 4:.1f} s after the "
        f"client left (bound {STOP_BOUND} s): {_open_transactions(engine)}"
    )
    said = _waited(lambda: _left(server, "report (pdf)", before), 5)
    assert said is not None, _export_lines(server)[before:]
    (line,) = [e for e in _export_lines(server)[before:] if e["export"] == "report (pdf)"]
    assert line["rows"] < SEEDED  # stopped part-way (at 0 if it left before the first row)
    record(request.node, "export: client leaves mid-PDF", 1,
           f"rendering stopped within {STOP_BOUND:.0f} s (took {stopped:.2f} s), "
           f"after {line['rows']} of {SEEDED} rows; transaction ended")  # fmt: skip


@pytest.mark.parametrize("path", ["/export/report?format=json", "/export/bundle"])
def test_a_client_leaving_mid_stream_stops_the_export(request, big, make_token, path):
    """The client reads 64 KiB of a streamed export and closes: the export's transaction ends
    within STOP_BOUND seconds and the server says it stopped."""
    server, engine, tenant = big
    before = len(_export_lines(server))
    sock = _send(server, make_token(tenant, "auditor"), path)
    assert _read_status(sock, at_least=65536) == 200
    sock.close()
    stopped = _waited(lambda: not _open_transactions(engine), STOP_BOUND * 4)
    assert stopped is not None and stopped < STOP_BOUND, (stopped, _open_transactions(engine))
    what = "bundle" if "bundle" in path else "report (json)"
    said = _waited(lambda: _left(server, what, before), 5)
    assert said is not None, _export_lines(server)[before:]
    record(request.node, "export: client leaves mid-stream", 1,
           f"{what}: stream stopped, transaction ended within {STOP_BOUND:.0f} s")  # fmt: skip


def test_n_plus_one_concurrent_exports_get_503_while_healthz_answers(request, big, make_token):
    """Two slow readers of a bundle (streamed as it is built) hold the two slots: the third
    export (report or bundle) is 503 with Retry-After while healthz answers; once they leave
    (and after failed exports), two slots are there again, not one and not none. (A report is
    spooled and signed before it is sent, so its slot is back once the server has its body.)"""
    from tests.support.plant_server import call

    server, _, tenant = big
    token = make_token(tenant, "auditor")

    def hold_two() -> list[socket.socket]:
        readers = [_send(server, token, "/export/bundle", receive_buffer=4096) for _ in range(2)]
        assert [_read_status(r) for r in readers] == [200, 200]
        return readers

    def leave(readers: list[socket.socket]) -> None:
        before = len(_export_lines(server))
        for reader in readers:
            reader.close()
        gone = _waited(lambda: _left(server, "bundle", before, count=2), 15)
        assert gone is not None, f"the slots never came back: {_export_lines(server)[before:]}"
        assert call(server.base, "GET", "/export/report?kind=job-roles", token).status == 200

    readers = hold_two()
    for path in ("/export/report?format=csv", "/export/bundle"):
        refused = call(server.base, "GET", path, token, timeout=10)
        assert refused.status == 503, (path, refused.status, refused.body)
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["retry-after"]) > 0
        assert refused.body["limit"] == 2
    health = call(server.base, "GET", "/export/healthz", timeout=10)
    assert health.status == 200, health
    leave(readers)
    for path, status in (
        ("/export/report?format=xml", 422),
        (f"/export/bundle?entity={uuid.uuid4()}", 404),
    ):
        assert call(server.base, "GET", path, token).status == status
    readers = hold_two()  # both slots free again: nothing leaked
    assert call(server.base, "GET", "/export/report?format=csv", token).status == 503
    leave(readers)
    record(request.node, "export: N+1 concurrent exports", 2, "real server, 2 slow readers: "
           "503 + Retry-After, healthz 200; both slots back after close and errors")  # fmt: skip
