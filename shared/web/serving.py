"""The local HTTP server of `plant serve`: waitress, with deadlines on slow clients.

waitress reads each request whole (head and body, past ``inbuf_overflow`` into a temporary
file) in one I/O loop and only then hands it to a worker thread, and it queues a response's
output (past ``outbuf_overflow`` into a temporary file) for the loop to send as the client
reads: a client that sends or reads slowly holds a connection, never a thread. On top of
waitress this module adds what it leaves open:

- a deadline on each request: its head and body must arrive within ``request_timeout`` of its
  first byte, or the connection is closed (waitress only closes connections idle for
  ``channel_timeout``, which a client sending a byte now and then never is);
- a deadline on a slow reader: a worker thread whose response waits for a client that has
  taken no byte for ``channel_timeout`` gives up, and the response stops being rendered;
- past the connection limit, the connection idle longest is closed to make room, instead of
  waitress's refusing every new connection while stalled ones hold every place;
- every error the server itself answers (a malformed request line or header, a head too
  large, a bad chunk, a body over the limit) is problem+json of the project's own types, and
  what the client sent past a refused request is read away before the socket closes, so the
  answer reaches it instead of a reset;
- once a client's socket is full, a worker stops trying to send after every chunk it writes;
- a connection is read while its request runs (``channel_request_lookahead``), so a client
  that closes it is seen at once: ``waitress.client_disconnected`` says so to a request that
  has written nothing yet (a PDF being rendered stops), and the next write of one that has
  fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from waitress import utilities
from waitress.channel import ClientDisconnected, HTTPChannel
from waitress.server import BaseWSGIServer, TcpWSGIServer
from waitress.task import ErrorTask

from shared.config import _int
from shared.errors import (
    MalformedRequest,
    PayloadTooLarge,
    PlantError,
    RequestHeadersTooLarge,
)
from shared.logs import configure
from shared.web.router import MAX_BODY, problem_response

log = configure().getChild("serve")

MAX_HEAD = 64 * 1024  # request line and headers together
# File descriptors kept back from the connection limit: the listener, the database pool,
# log files, the embedded PostgreSQL's client side.
RESERVED_FDS = 256
LINGER_READS = 16  # at most 1 MiB of a refused request read away before its socket closes
FDS_PER_CONNECTION = 3  # the socket, and temporary files for a large body and a large response


@dataclass(frozen=True)
class Limits:
    """How `plant serve` bounds its clients; each is read from the environment variable named
    beside it."""

    threads: int = 8  # THREADS: worker threads
    connections: int = 1000  # PLANT_SERVE_CONNECTIONS: open before the idlest is closed
    request_timeout: int = 30  # PLANT_SERVE_REQUEST_TIMEOUT: seconds for a head and body
    idle_timeout: int = 15  # PLANT_SERVE_IDLE_TIMEOUT: seconds a connection may move no byte

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Limits:
        return cls(
            threads=_int(env, "THREADS", cls.threads),
            connections=_int(env, "PLANT_SERVE_CONNECTIONS", cls.connections),
            request_timeout=_int(env, "PLANT_SERVE_REQUEST_TIMEOUT", cls.request_timeout),
            idle_timeout=_int(env, "PLANT_SERVE_IDLE_TIMEOUT", cls.idle_timeout),
        )


def _problem(error: utilities.Error, server: BaseWSGIServer) -> PlantError:
    """The project's problem for an error waitress found in a request."""
    if isinstance(error, utilities.RequestHeaderFieldsTooLarge):
        limit = server.adj.max_request_header_size
        return RequestHeadersTooLarge(
            f"the request line and headers must be at most {limit} bytes", limit=limit
        )
    if isinstance(error, utilities.RequestEntityTooLarge):
        limit = server.adj.max_request_body_size
        return PayloadTooLarge(f"the body must be at most {limit} bytes", limit=limit)
    if isinstance(error, utilities.ServerNotImplemented):
        # A transfer coding other than chunked: the client's to fix, so a 4xx (not the 501
        # waitress answers).
        return MalformedRequest(
            "Transfer-Encoding may only be chunked: send the body chunked or with a length"
        )
    if isinstance(error, utilities.BadRequest):
        return MalformedRequest(f"the request is not valid HTTP/1.1: {error.body}")
    return PlantError("an internal error occurred")


class ProblemErrorTask(ErrorTask):
    """waitress's error answer, as problem+json with the base headers (nosniff, no-store)."""

    def execute(self) -> None:
        # types-waitress types ``request`` as the error (it is the parser holding it) and the
        # headers as a Sequence (waitress keeps a list).
        error = self.request.error  # type: ignore[attr-defined]
        response = problem_response(_problem(error, self.channel.server))
        body = response.get_data()
        self.status = response.status
        self.response_headers.extend(  # type: ignore[attr-defined]
            (name, value)
            for name, value in response.headers.items()
            if name.lower() != "content-length"
        )
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class DeadlineChannel(HTTPChannel):
    """One client connection: when its current request began, and a bounded wait on it."""

    error_task_class = ProblemErrorTask
    request_started = 0.0  # time.monotonic() of the first byte of the request being read

    # The socket took less than was queued the last time: until the loop sees it writable
    # again, every send would fail. waitress tries one after each chunk the application
    # writes, each time copying up to a send buffer's worth (4 MiB) out of the queued output:
    # for a client that reads nothing, a cost that grows with the response times its chunks.
    socket_full = False

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.request_started = time.monotonic()
        return bool(super().received(data))

    def handle_close(self) -> None:
        """Close after the answer, reading away what the client sent past it first: closing a
        socket with unread input resets the connection, and the client loses the answer (a
        431 for a head too large, say) before it reads it.

        Called again once closed (a send that failed closes the channel, then waitress closes
        what it had marked to close after the answer): nothing is left to do, and failing
        here would end the server's loop, every connection with it."""
        if self.socket is None:
            return
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_WR)
            self.socket.setblocking(False)
            for _ in range(LINGER_READS):
                if not self.socket.recv(65536):
                    break
        super().handle_close()

    def handle_write(self) -> None:
        self.socket_full = False  # the loop calls this once the socket is writable
        super().handle_write()

    def _flush_some(self, do_close: bool = True) -> bool:
        if self.socket_full:
            return False
        # waitress's private flush, which types-waitress leaves out
        flushed = bool(super()._flush_some(do_close=do_close))  # type: ignore[misc]
        self.socket_full = self.total_outbufs_len > 0
        return flushed

    def _flush_outbufs_below_high_watermark(self) -> None:
        """Wait (in the worker thread) for the client to take the output queued past the high
        watermark, as waitress does, but give up once it has taken no byte for the idle
        timeout: the response is abandoned and its thread goes back to the pool."""
        high = self.adj.outbuf_high_watermark
        if self.total_outbufs_len <= high:
            return
        with self.outbuf_lock:
            self._flush_exception(self._flush_some, do_close=False)  # type: ignore[attr-defined]
            while self.connected and self.total_outbufs_len > high:
                if time.time() - self.last_activity > self.adj.channel_timeout:
                    self.will_close = True
                    self.server.pull_trigger()
                    raise ClientDisconnected
                self.server.pull_trigger()
                self.outbuf_lock.wait(timeout=1.0)


class Server(TcpWSGIServer):
    """waitress's TCP server with the request deadline and closing the idlest connection
    when the limit is reached."""

    channel_class = DeadlineChannel

    def __init__(self, application: Callable[..., Any], request_timeout: int, **kw: Any) -> None:
        self.request_timeout = request_timeout
        self.evicting = False
        super().__init__(application, **kw)

    # types-waitress types the loop's times (time.time()) as int and ``active_channels`` (a
    # dict fd -> channel) as one channel: the ignores below are those two mistakes.
    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # type: ignore[arg-type]
        started_before = time.monotonic() - self.request_timeout
        for channel in self.active_channels.values():  # type: ignore[attr-defined]
            if channel.request is not None and channel.request_started < started_before:
                channel.will_close = True

    def readable(self) -> bool:
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval  # type: ignore[assignment]
            self.maintenance(now)
        if not self.accepting:
            return False
        if len(self.active_channels) < self.adj.connection_limit:  # type: ignore[arg-type]
            self.evicting = False
            return True
        # At the limit: close the connection idle longest (one a worker thread is not serving),
        # and accept again once it is gone (the loop closes it before it polls again).
        channels = self.active_channels.values()  # type: ignore[attr-defined]
        idle = [c for c in channels if not c.requests and not c.will_close]
        if idle:
            min(idle, key=lambda c: c.last_activity).will_close = True
            if not self.evicting:
                log.warning("connection limit (%d) reached: closing the idlest connections",
                            self.adj.connection_limit)  # fmt: skip
                self.evicting = True
        return False


def connection_limit(wanted: int) -> int:
    """``wanted``, or fewer if the process may not open enough files (the soft limit is raised
    to the hard one first)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted * FDS_PER_CONNECTION + RESERVED_FDS
    if soft != resource.RLIM_INFINITY and soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, (soft - RESERVED_FDS) // FDS_PER_CONNECTION))


def build(application: Callable[..., Any], host: str, port: int, limits: Limits) -> Server:
    """The server for ``application`` on ``host:port`` (bound, not yet serving)."""
    return Server(
        application,
        request_timeout=limits.request_timeout,
        host=host,
        port=port,
        threads=limits.threads,
        connection_limit=connection_limit(limits.connections),
        channel_timeout=limits.idle_timeout,
        # Keep reading a connection while its request runs, so that a client closing it is
        # seen at once (waitress.client_disconnected: an export that writes nothing yet, a PDF
        # being rendered, stops) rather than at the first failed write or the idle timeout.
        channel_request_lookahead=1,
        cleanup_interval=1,
        max_request_header_size=MAX_HEAD,
        max_request_body_size=MAX_BODY,
        inbuf_overflow=128 * 1024,
        outbuf_overflow=256 * 1024,
        ident="",
    )


def serve(application: Callable[..., Any], host: str, port: int) -> None:
    """Serve until SIGTERM or Ctrl-C (both end the loop and its worker threads cleanly)."""
    server = build(application, host, port, Limits.from_env(dict(os.environ)))
    # waitress's own warnings (a long task queue, a socket error) as JSON lines like ours.
    waitress_log = logging.getLogger("waitress")
    waitress_log.handlers = list(log.parent.handlers) if log.parent else []
    waitress_log.setLevel(logging.WARNING)
    waitress_log.propagate = False

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    server.run()
