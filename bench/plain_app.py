"""The HTTP baseline: a minimal function that INSERTs the request body, as received, into a
plain table (no token, no validation, no canonical form, no digests, no log) and answers 201.

It is a functions-framework function like the registry (``plain(request)``, the same Flask
app around it), served by functions-framework's own gunicorn application class, the one
`functions-framework --target=...` (and so Cloud Functions) runs the registry with, so both
sides get the same worker, threads and timeout settings from the same environment (WORKERS,
THREADS, CLOUD_RUN_TIMEOUT_SECONDS). Its connections make one round trip per statement as
the product's do (``shared.storage.wire``): the same driver, used as well as we know how.
``python -m bench.plain_app --port P``.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine

from shared.storage import wire

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
        event.listen(_engine, "connect", lambda conn, _record: wire.one_round_trip(conn))
    return _engine


def plain(request: Any) -> tuple[bytes, int, dict[str, str]]:
    if request.path.endswith("/healthz"):
        with _db().connect() as conn:
            conn.execute(text("SELECT 1")).scalar_one()
        return b'{"status":"ok"}', 200, {"Content-Type": "application/json"}
    body = request.get_data()
    with _db().begin() as conn:
        new_id = conn.execute(_INSERT, {"b": body}).scalar_one()
    return json.dumps({"id": new_id}).encode(), 201, {"Content-Type": "application/json"}


def main() -> None:
    from functions_framework._http.gunicorn import GunicornApplication

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    import functions_framework

    app = functions_framework.create_app(target="plain", source=__file__)
    GunicornApplication(app, args.host, args.port, False).run()


if __name__ == "__main__":
    main()
