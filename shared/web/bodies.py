"""A request's body as the WSGI server hands it over, bounded whatever its framing.

Servers present a body in different ways: gunicorn and werkzeug's server de-chunk a chunked
body, leave ``Transfer-Encoding`` in the environ, set no ``CONTENT_LENGTH`` and mark the
stream ``wsgi.input_terminated``; waitress buffers the body and passes it with a
``CONTENT_LENGTH``; werkzeug's test client gives whatever stream it was handed. werkzeug's own
``request.stream`` returns an empty stream for a chunked body unless the server set
``wsgi.input_terminated``, and functions_framework reads the whole rest of the body after every
response (``read_request``) with no bound at all. ``RequestBody`` replaces ``wsgi.input`` with
one reader for every case: it ends after the declared length or at the end of the de-chunked
stream, never yields more than ``MAX_BODY + 1`` bytes in total, and turns every way a body can
be unreadable into a named 4xx.
"""

from __future__ import annotations

import io
from typing import IO, Any

from shared.errors import MalformedRequest, PayloadTooLarge, PlantError

MAX_BODY = 1024 * 1024


class RequestBody(io.RawIOBase):
    """``wsgi.input`` bounded to its framing and to ``MAX_BODY + 1`` bytes."""

    def __init__(self, raw: IO[bytes], content_length: str | None, transfer_encoding: str | None):
        super().__init__()
        self._raw = raw
        self.problem: PlantError | None = None  # set when the framing or the stream is bad
        self.declared: int | None = None  # the Content-Length; None: chunked, read to its end
        encoding = (transfer_encoding or "").strip().lower()
        length = (content_length or "").strip()
        if encoding and length:
            # RFC 9112 6.3: both at once is a request a proxy may have framed differently.
            self.problem = MalformedRequest(
                "send Content-Length or Transfer-Encoding: chunked, not both"
            )
        elif encoding and encoding != "chunked":
            self.problem = MalformedRequest("chunked is the only transfer coding accepted")
        elif length and not (length.isascii() and length.isdigit()):
            self.problem = MalformedRequest("Content-Length must be a number of bytes")
        elif not encoding:
            digits = length.lstrip("0") or "0"
            # Twenty digits are past any body: no int() of an arbitrarily long header.
            self.declared = int(digits) if len(digits) < 20 else MAX_BODY + 1
        self._left = 0 if self.problem else MAX_BODY + 1
        if self.declared is not None:
            self._left = min(self.declared, self._left)
        self._peeked = b""  # the byte ``present`` read of a chunked body

    @classmethod
    def install(cls, environ: dict[str, Any]) -> RequestBody:
        """Put a ``RequestBody`` in place of ``environ["wsgi.input"]`` (once) and return it.

        Marked terminated, werkzeug hands it over as it is (to ``request.stream`` and to
        functions_framework's read after the response), so nothing reads past its bounds."""
        current = environ.get("wsgi.input")
        if isinstance(current, cls):
            return current
        body = cls(
            current or io.BytesIO(),
            environ.get("CONTENT_LENGTH"),
            environ.get("HTTP_TRANSFER_ENCODING"),
        )
        environ["wsgi.input"] = body
        environ["wsgi.input_terminated"] = True
        return body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (all that is left within the bounds when negative)."""
        want = self._left if size is None or size < 0 else min(size, self._left)
        parts: list[bytes] = []
        while want > 0:
            try:
                data = self._raw.read(want)
            except Exception:
                # Each server raises its own: gunicorn its parse errors (plain Exceptions)
                # for broken chunking, werkzeug's server OSError, any a lost connection.
                self.problem = MalformedRequest(
                    "the body could not be read: broken chunked framing or a lost connection"
                )
                self._left = 0
                break
            if not data:
                self._left = 0
                break
            parts.append(data)
            want -= len(data)
            self._left -= len(data)
        return b"".join(parts)

    def present(self) -> bool:
        """Whether the request carries a body at all (reads at most one byte of a chunked one)."""
        if self.problem:
            raise self.problem
        if self.declared is not None:
            return self.declared > 0
        self._peeked = self.read(1)
        if self.problem:
            raise self.problem
        return bool(self._peeked)

    def take(self) -> bytes:
        """The whole body: 413 past ``MAX_BODY`` (before reading it when its length says so),
        400 when it is cut short of its Content-Length or its chunked framing is broken."""
        if self.problem:
            raise self.problem
        if self.declared is not None and self.declared > MAX_BODY:
            raise _too_large()
        data = self._peeked + self.read()
        self._peeked = b""
        if self.problem:
            raise self.problem
        if len(data) > MAX_BODY:
            raise _too_large()
        if self.declared is not None and len(data) < self.declared:
            raise MalformedRequest(
                f"the body ended after {len(data)} of the {self.declared} bytes "
                "its Content-Length declares"
            )
        return data


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(f"the body must be at most {MAX_BODY} bytes", limit=MAX_BODY)
