"""Structured logs in Cloud Logging's JSON format: one line per request, never a secret.

Each line carries ``severity``, ``message``, ``httpRequest`` (method, URL, status, latency,
bytes sent) and, behind Cloud Run, the trace from ``X-Cloud-Trace-Context``. A request has
exactly one line, written when its response is over: a streamed response's when its last
byte was handed to the server (or it stopped), so its latency is the whole stream's. Only
what is passed here is written: no header, token, body or key ever reaches a log line.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any

import orjson

_handler: _StdoutHandler | None = None
_PLANT = logging.getLogger("plant")  # the one logger configure() sets up
MAX_LOGGED_URL = 2048  # characters of a request's path and query kept in its line

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


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time (Cloud Run reads stdout)."""

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure() -> logging.Logger:
    """The ``plant`` logger, writing JSON lines to stdout (configured once per process)."""
    global _handler
    logger = _PLANT
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
    handler = _handler
    if handler is None:
        configure()
        handler = _handler
    assert handler is not None and handler.lock is not None  # configure() made both
    if not _PLANT.isEnabledFor(logging.INFO):
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


def logged_url(path: str, query: bytes) -> str:
    """``path?query`` (the query as sent, still percent-encoded), cut to MAX_LOGGED_URL."""
    url = path + ("?" + query.decode("latin-1") if query else "")
    return url if len(url) <= MAX_LOGGED_URL else url[: MAX_LOGGED_URL - 1] + "\u2026"


class RequestLine:
    """One request's line, written once by ``write`` when its response is over."""

    def __init__(self, method: str, url: str, started: float, trace: str | None) -> None:
        self.method = method
        self.url = url
        self.started = started  # time.perf_counter() when the request reached the app
        self.trace = trace
        self._written = False

    def write(self, status: int, sent: int, **extra: Any) -> None:
        if self._written:
            return
        self._written = True
        seconds = time.perf_counter() - self.started
        request_line(
            f"{self.method} {self.url.split('?', 1)[0]} {status}",
            {
                "httpRequest": {
                    "requestMethod": self.method,
                    "requestUrl": self.url,
                    "status": status,
                    "responseSize": str(sent),  # Cloud Logging's int64, as a string
                    "latency": f"{seconds:.4f}s",
                },
                # read now: a stream's database work (an export's rows) happens as it is sent
                "dbMs": round(db_time.get() * 1000, 2),
                **extra,
                **trace_field(self.trace),
            },
        )


class LoggedStream:
    """A streamed response body that counts the bytes it hands the server and writes the
    request's line when the server closes it (after the last byte, after a failed write when
    the client left, or unsent), saying which (``stream``: completed, stopped or failed)."""

    def __init__(
        self, chunks: Iterable[bytes] | Iterable[str], line: RequestLine, status: int
    ) -> None:
        self._source = chunks
        self._chunks: Iterator[bytes | str] = iter(chunks)
        self._line = line
        self._status = status
        self.sent = 0
        self.outcome = "stopped"  # until the chunks run out or fail

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self.outcome = "completed"
            raise
        except Exception:
            self.outcome = "failed"
            raise
        if isinstance(chunk, str):
            chunk = chunk.encode()  # as werkzeug would send it
        self.sent += len(chunk)
        return chunk

    def close(self) -> None:
        try:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()
        finally:
            self._line.write(self._status, self.sent, stream=self.outcome)
