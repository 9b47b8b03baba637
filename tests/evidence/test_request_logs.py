"""Request lines tell the truth (issue #23, point 5): a streamed export is logged once, after
its last byte, with the stream's whole duration and its byte count; every line names the full
path, the function's prefix included, under functions-framework and under `plant serve`."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator

import pytest

from shared.evidence import bundle
from tests.support.reliability_table import record

PAUSE = 0.25  # seconds the slowed bundle waits before each chunk


@pytest.fixture
def slow_bundle(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Bundles sent a chunk every PAUSE seconds; the list holds the seconds they slept."""
    slept: list[float] = []
    chunks = bundle.json_chunks

    def slowly(parts: Iterator[dict]) -> Iterator[bytes]:
        for chunk in chunks(parts):
            time.sleep(PAUSE)
            slept.append(PAUSE)
            yield chunk

    monkeypatch.setattr(bundle, "json_chunks", slowly)
    return slept


def _request_lines(out: str) -> list[dict]:
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [line for line in lines if "httpRequest" in line]


def test_a_slow_streamed_bundle_is_logged_after_its_last_byte(
    export_client, seeded, make_token, slow_bundle, capsys, request
):
    """The line is written when the body is closed, not when the headers leave: its latency
    covers the whole stream and it counts every byte."""
    record(request.node, "a stream logged at its first byte", 1, "logged after the last byte")
    token = make_token(seeded.tenant, "auditor")
    capsys.readouterr()
    started = time.perf_counter()
    response = export_client.get(
        "/export/bundle", headers={"Authorization": f"Bearer {token}"}, buffered=False
    )
    assert response.status_code == 200
    assert _request_lines(capsys.readouterr().out) == [], "logged before the body was sent"
    body = response.get_data()
    response.close()
    took = time.perf_counter() - started
    (line,) = _request_lines(capsys.readouterr().out)
    logged = line["httpRequest"]
    assert json.loads(body)["statement"]  # the whole bundle arrived
    latency = float(logged["latency"].rstrip("s"))
    assert sum(slow_bundle) <= latency <= took, (logged, sum(slow_bundle), took)
    assert logged["responseSize"] == str(len(body))
    assert logged["requestUrl"] == "/export/bundle"
    assert line["stream"] == "completed"


def test_a_stream_the_client_left_is_logged_once_as_stopped(
    export_client, seeded, make_token, slow_bundle, capsys
):
    token = make_token(seeded.tenant, "auditor")
    capsys.readouterr()
    response = export_client.get(
        "/bundle?kind=skills", headers={"Authorization": f"Bearer {token}"}, buffered=False
    )
    first = next(response.response)
    response.close()  # what a WSGI server does after a failed write
    (line,) = _request_lines(capsys.readouterr().out)
    assert line["stream"] == "stopped"
    assert line["httpRequest"]["responseSize"] == str(len(first))
    # reached at the function's own root, the line still names the function
    assert line["httpRequest"]["requestUrl"] == "/export/bundle?kind=skills"


@pytest.mark.parametrize("path", ["/registry/skills?limit=2", "/skills?limit=2"])
def test_a_line_names_the_function_under_functions_framework(
    path, database_url, make_token, tenant, capsys
):
    import functions_framework

    from shared.config import ROOT

    client = functions_framework.create_app(
        target="registry", source=str(ROOT / "main.py")
    ).test_client()
    capsys.readouterr()
    response = client.get(path, headers={"Authorization": f"Bearer {make_token(tenant)}"})
    assert response.status_code == 200
    (line,) = _request_lines(capsys.readouterr().out)
    assert line["httpRequest"]["requestUrl"] == "/registry/skills?limit=2"
    assert line["message"] == "GET /registry/skills 200"
    assert line["httpRequest"]["responseSize"] == str(len(response.get_data()))
    assert "stream" not in line


@pytest.fixture
def local_server() -> Iterator[int]:
    """`plant serve`'s own server (shared.web.serving over functions.local), in this process so
    that the slowed bundle is the one it serves; yields its port."""
    from functions import local
    from shared.web import serving

    server = serving.build(local.app, "127.0.0.1", 0, serving.Limits(threads=2))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield server.socket.getsockname()[1]
    finally:
        server.close()
        thread.join(timeout=10)


def _get(port: int, path: str, token: str | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(
            "GET", path, headers={"Authorization": f"Bearer {token}"} if token else {}
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_plant_serve_logs_the_whole_stream_and_the_prefix(
    local_server, seeded, make_token, slow_bundle, capsys, request
):
    """Under the local dispatcher (which moves the prefix into SCRIPT_NAME): one line per
    request, the prefix in requestUrl, a stream's real duration and size; a path under no
    function gets its line too."""
    record(request.node, "requestUrl without the function prefix", 3, "full path logged")
    token = make_token(seeded.tenant, "auditor")
    capsys.readouterr()
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", local_server, timeout=30)
    try:
        connection.request("GET", "/export/bundle", headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        body = response.read(1)
        chunks_at_first_byte = len(slow_bundle)
        body += response.read()
        status = response.status
    finally:
        connection.close()
    took = time.perf_counter() - started
    assert status == 200
    # streamed, not buffered: the first byte arrived before the bundle's last chunk was made
    assert chunks_at_first_byte < len(slow_bundle), (chunks_at_first_byte, len(slow_bundle))
    assert _get(local_server, "/registry/skills?limit=2", token)[0] == 200
    assert _get(local_server, "/nowhere")[0] == 404
    deadline = time.monotonic() + 10  # the server writes a stream's line as it closes it
    lines: list[dict] = []
    while len(lines) < 3 and time.monotonic() < deadline:
        lines += _request_lines(capsys.readouterr().out)
        time.sleep(0.05)
    by_url = {line["httpRequest"]["requestUrl"]: line for line in lines}
    assert len(lines) == 3 and set(by_url) == {
        "/export/bundle",
        "/registry/skills?limit=2",
        "/nowhere",
    }, lines
    streamed = by_url["/export/bundle"]["httpRequest"]
    assert sum(slow_bundle) <= float(streamed["latency"].rstrip("s")) <= took, streamed
    assert streamed["responseSize"] == str(len(body))
    assert by_url["/nowhere"]["httpRequest"]["status"] == 404
