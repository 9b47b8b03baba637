"""The HTTP baseline: a minimal WSGI function that INSERTs the request body, as received, into a
plain table (no validation, no canonical form, no digests, no log) and answers 201.

``python -m bench.plain_app --port P`` serves it with functions-framework's own gunicorn
application class, the one `functions-framework --target=...` (and so Cloud Functions) runs
the registry with, so both sides get the same worker, threads and timeout settings from the
same environment (WORKERS, THREADS, CLOUD_RUN_TIMEOUT_SECONDS).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

_engine: Engine | None = None
_INSERT = text("INSERT INTO bench_plain (body) VALUES (:b) RETURNING id")


def _db() -> Engine:
    global _engine
    if _engine is None:
        from shared.storage.urls import pg8000_url

        size = int(os.environ.get("PLANT_DB_POOL_SIZE") or os.environ.get("THREADS") or 8)
        _engine = create_engine(
            pg8000_url(os.environ["DATABASE_URL"]), pool_size=size, max_overflow=0
        )
    return _engine


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO", "").endswith("/healthz"):
        with _db().connect() as conn:
            conn.execute(text("SELECT 1")).scalar_one()
        status, out = "200 OK", b'{"status":"ok"}'
    else:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        with _db().begin() as conn:
            new_id = conn.execute(_INSERT, {"b": body}).scalar_one()
        status, out = "201 Created", json.dumps({"id": new_id}).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(out)))]
    )
    return [out]


def main() -> None:
    from functions_framework._http.gunicorn import GunicornApplication

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    GunicornApplication(app, args.host, args.port, False).run()


if __name__ == "__main__":
    main()
