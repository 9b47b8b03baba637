"""Exports' hold on a process: a slot among ``PLANT_EXPORT_CONCURRENCY``, taken before any
expensive work, given back exactly once when the response ends, fails or its client leaves,
and the means to notice that the client left while nothing is being written yet.

A slot is released by whichever comes first: its stream finishing, the WSGI server closing the
response (which it does after a failed write and also when the body was never iterated), or an
error before the response was built.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import Any

from shared import config
from shared.errors import PlantError, ServiceUnavailable
from shared.logs import configure

log = configure().getChild("export")

# Keys under which WSGI servers hand the application the client's socket (gunicorn, the
# werkzeug development server), and waitress's own "has the client gone?" callable.
SOCKET_KEYS = ("gunicorn.socket", "werkzeug.socket")
WAITRESS_PROBE = "waitress.client_disconnected"


class ExportsBusy(ServiceUnavailable):
    """Every export slot of this process is taken: retry after Retry-After seconds."""

    def __init__(self, size: int) -> None:
        super().__init__(
            f"this instance is already running its {size} concurrent export(s) "
            "(PLANT_EXPORT_CONCURRENCY); retry shortly",
            limit=size,
        )


class ClientGone(PlantError):
    """The client closed the connection: the export stops (499, as nginx logs it; nobody
    receives this answer)."""

    status, slug, title = 499, "client-closed-request", "Client closed request"


def client_present(environ: dict[str, Any]) -> Callable[[], bool]:
    """A cheap check, callable as often as wanted, that the request's client is still
    connected; always True when the server offers no way to tell."""
    probe = environ.get(WAITRESS_PROBE)
    if callable(probe):
        return lambda: not probe()
    for key in SOCKET_KEYS:
        sock = environ.get(key)
        if isinstance(sock, socket.socket) and not isinstance(sock, ssl.SSLSocket):
            return lambda: not _peer_closed(sock)
    return lambda: True


def _peer_closed(sock: socket.socket) -> bool:
    """True once the peer has closed or reset the connection (a peek: nothing is consumed)."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False  # connected, nothing sent: the normal case
    except OSError:
        return True  # reset, or the server already closed it


class Slot:
    """One export's slot; ``close`` releases it once, whatever calls it first."""

    def __init__(self, release: Callable[[], None], present: Callable[[], bool], what: str):
        self._release = release
        self._present = present
        self._what = what
        self._lock = threading.Lock()
        self._sources: list[Any] = []
        self._done = False
        self.rows = 0  # rows read through ``attended``
        self.sent = 0  # bytes handed to the server through ``stream``

    def attended(self, rows: Iterable[Any], every: int = 100) -> Iterator[Any]:
        """``rows``, checking every ``every`` rows that the client still waits for them:
        for work done before anything is written (a PDF is rendered whole), where no failed
        write would tell. Raises ClientGone once it has left."""
        for row in rows:
            if self.rows % every == 0 and not self._present():
                raise ClientGone("the client closed the connection")
            self.rows += 1
            yield row

    def stream(self, chunks: Iterator[bytes], *sources: Any) -> Iterator[bytes]:
        """``chunks`` as a response body; when it ends or the server closes it early (a
        failed write: the client left) the slot is closed, and ``sources`` with it (the
        generators holding the export's transaction)."""
        self._sources = [chunks, *sources]
        try:
            for chunk in chunks:
                self.sent += len(chunk)
                yield chunk
        except GeneratorExit:
            self.close("stopped: the client went away")
            raise
        except Exception:
            self.close("failed")
            raise
        self.close("completed")

    def close(self, outcome: str = "closed before its body was sent") -> None:
        """Stop the export's work (close its generators) and release the slot, once."""
        with self._lock:
            if self._done:
                return
            self._done = True
        try:
            for source in self._sources:
                close = getattr(source, "close", None)
                if close is not None:
                    close()
        finally:
            self._release()
            done = {"export": self._what, "outcome": outcome, "rows": self.rows, "bytes": self.sent}
            log.info("%s %s", self._what, outcome, extra={"structured": done})


class Slots:
    """A process's export slots: ``take`` never waits, it answers ExportsBusy instead."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._free = threading.BoundedSemaphore(size)

    def take(self, environ: dict[str, Any], what: str) -> Slot:
        if not self._free.acquire(blocking=False):
            raise ExportsBusy(self.size)
        return Slot(self._free.release, client_present(environ), what)


@lru_cache(maxsize=1)
def slots() -> Slots:
    """The process's slots, sized by the settings (read once)."""
    return Slots(config.settings().export_concurrency)
