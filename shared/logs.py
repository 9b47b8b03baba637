"""Structured logs in Cloud Logging's JSON format: one line per request, never a secret.

Each line carries ``severity``, ``message``, ``httpRequest`` (method, path, status, latency)
and, behind Cloud Run, the trace from ``X-Cloud-Trace-Context``. Only what is passed here is
written: no header, token, body or key ever reaches a log line.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from contextvars import ContextVar
from typing import Any

import orjson

_handler: _StdoutHandler | None = None

# Seconds spent in the database by the current request (Server-Timing, request lines); kept
# here, not with the engine, so that importing the http helper does not load SQLAlchemy.
db_time: ContextVar[float] = ContextVar("db_time", default=0.0)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"severity": record.levelname, "message": record.getMessage()}
        entry.update(getattr(record, "structured", {}))
        if record.exc_info:
            # The exception type and where it happened, not its message (it may hold data).
            exc_type, _, tb = record.exc_info
            frames = []
            while tb is not None:
                frames.append(f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}")
                tb = tb.tb_next
            entry["error"] = {"type": exc_type.__name__ if exc_type else None, "at": frames[-3:]}
        return encode(entry)


def encode(entry: dict[str, Any]) -> str:
    """One JSON line, ASCII only (whatever stdout's encoding): orjson when its output is
    ASCII, else (non-ASCII text, lone surrogates) the standard library's escaping encoder."""
    try:
        line = orjson.dumps(entry, default=str).decode()
    except TypeError:  # orjson.JSONEncodeError: a lone surrogate, a non-string key
        return json.dumps(entry, default=str)
    return line if line.isascii() else json.dumps(entry, default=str)


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is at the time (Cloud Run reads stdout)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure() -> logging.Logger:
    """The ``plant`` logger, writing JSON lines to stdout (configured once per process)."""
    global _handler
    logger = logging.getLogger("plant")
    if _handler is None:
        _handler = _StdoutHandler()
        _handler.setFormatter(JsonFormatter())
        logger.addHandler(_handler)
        logger.setLevel(os.environ.get("PLANT_LOG_LEVEL", "INFO"))
        logger.propagate = False
    return logger


def request_line(message: str, fields: dict[str, Any]) -> None:
    """A request's INFO line (``message`` and ``fields``, as ``JsonFormatter`` writes them),
    written through the plant handler without a LogRecord: building one (its caller lookup,
    thread and process names) costs more than the line itself."""
    logger, handler = configure(), _handler
    assert handler is not None and handler.lock is not None  # configure() made both
    if not logger.isEnabledFor(logging.INFO):
        return
    line = encode({"severity": "INFO", "message": message, **fields}) + handler.terminator
    with handler.lock:
        try:
            stream = handler.stream
            stream.write(line)
            stream.flush()
        except Exception:
            # As Handler.emit does: a log line that cannot be written never fails a request.
            handler.handleError(logging.makeLogRecord({"msg": message}))


def trace_field(header: str | None) -> dict[str, str]:
    """``X-Cloud-Trace-Context: TRACE/SPAN;o=1`` -> Cloud Logging's trace field."""
    project = os.environ.get("GOOGLE_CLOUD_PROJECT")
    if not header or not project:
        return {}
    trace = header.split("/", 1)[0]
    if not trace.isalnum() or len(trace) > 64:
        return {}
    return {"logging.googleapis.com/trace": f"projects/{project}/traces/{trace}"}
