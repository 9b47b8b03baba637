"""Errors the server stack answers itself are problem+json (issue 20, item 11: Must exist 11).

Each request below is refused before any function sees it: by the HTTP server (`plant serve`)
or by the dispatcher in front of the functions. Each is sent as raw bytes over a real socket to
a real `plant serve`, and its answer must be RFC 9457 problem+json of the project's own types,
with the base headers, and a 4xx.
"""

from __future__ import annotations

import json
import socket

from shared.errors import PROBLEM_BASE
from shared.web.router import MAX_BODY
from tests.support.plant_server import PlantServer
from tests.support.reliability_table import record

HOST = b"Host: 127.0.0.1\r\n"
JSON_POST = b"POST /registry/skills HTTP/1.1\r\n" + HOST + b"Content-Type: application/json\r\n"

# (what is wrong, the bytes sent, status, problem type)
MALFORMED = [
    ("malformed request line", b"THIS IS NOT HTTP\r\n" + HOST + b"\r\n", 400, "malformed-request"),
    (
        "method with a forbidden character",
        b"GE(T /registry/healthz HTTP/1.1\r\n" + HOST + b"\r\n",
        400,
        "malformed-request",
    ),
    (
        "header line without a colon",
        b"GET /registry/healthz HTTP/1.1\r\n" + HOST + b"no colon here\r\n\r\n",
        400,
        "malformed-request",
    ),
    (
        "bare CR inside a header",
        b"GET /registry/healthz HTTP/1.1\r\n" + HOST + b"X-A: a\rb\r\n\r\n",
        400,
        "malformed-request",
    ),
    (
        "request line and headers over 64 KiB",
        b"GET /registry/healthz HTTP/1.1\r\n" + HOST + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n",
        431,
        "request-headers-too-large",
    ),
    (
        "Content-Length not a number",
        JSON_POST + b"Content-Length: ten\r\n\r\n",
        400,
        "malformed-request",
    ),
    (
        "two different Content-Lengths",
        JSON_POST + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        400,
        "malformed-request",
    ),
    (
        "body over the limit at the server (Content-Length)",
        JSON_POST + f"Content-Length: {MAX_BODY + 1}\r\n\r\n".encode(),
        413,
        "payload-too-large",
    ),
    (
        "chunk size not hexadecimal",
        JSON_POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        400,
        "malformed-request",
    ),
    (
        "chunk not terminated by CRLF",
        JSON_POST + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
        400,
        "malformed-request",
    ),
    (
        "transfer coding other than chunked",
        JSON_POST + b"Transfer-Encoding: gzip\r\n\r\n",
        400,
        "malformed-request",
    ),
    (
        "path under no function",
        b"GET /nowhere HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n",
        404,
        "not-found",
    ),
]


def _exchange(server: PlantServer, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw``, read the answer until the server closes: (status, headers, body); status
    0 when no answer came (a reset, or nothing within 5 s)."""
    data = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        try:
            sock.sendall(raw)
            for _ in range(10_000):  # bounded: the answers here are a few hundred bytes
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:  # reset, or timed out
            pass
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return 0, {}, data
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def test_every_error_of_the_server_stack_is_problem_json(serve, request):
    server = serve()
    wrong = []
    for what, raw, status, slug in MALFORMED:
        got, headers, body = _exchange(server, raw)
        try:
            problem = json.loads(body)
        except ValueError:
            problem = {}
        if not (
            got == status
            and headers.get("content-type") == "application/problem+json"
            and headers.get("x-content-type-options") == "nosniff"
            and problem.get("type") == PROBLEM_BASE + slug
            and problem.get("status") == status
            and problem.get("detail")
        ):
            wrong.append((what, got, headers.get("content-type"), body[:200]))
    record(
        request.node,
        "server-stack malformed requests (request line, headers, chunks, sizes, paths)",
        len(MALFORMED),
        f"{len(MALFORMED) - len(wrong)} of {len(MALFORMED)} answered 4xx problem+json of the "
        "project's types with nosniff",
    )
    assert wrong == [], wrong
