"""The embedded PostgreSQL that `plant` commands share on one machine (local mode).

Several processes use the server under one data directory at once: `make run` in one shell,
`plant audit` in another. pgserver starts a postmaster, or reuses the one its postmaster.pid
names while that process lives, under an inter-process lock of its own, so one data directory
never gets two (PostgreSQL itself refuses a second besides). Its record of who still uses the
server, though, is a list of process ids on disk that a killed process (kill -9) never leaves:
once one stays behind, no later run ever stops the server. So the lifetime is kept here, with
locks the kernel drops however a process dies, in files beside the data directory:

- ``<pg>.lock``, held exclusively while a process joins (starting or reusing the server, then
  migrating it) or leaves (deciding whether to stop it), so those steps never interleave;
- ``<pg>.users``, held shared by every process using the server: the last one to leave, the
  only one that can then take it exclusively, stops it;
- ``<pg>.started``, the identity (pid and start time) of the postmaster a plant process started
  or adopted: only that one is ever stopped, never one another program started and still uses.

SIGTERM and SIGHUP end a process that holds the server the way Ctrl-C does, so the last one
out stops it however it is stopped. A run killed with kill -9 leaves the server running; the
next run reuses it (a postmaster no plant process and no other pgserver user holds is adopted)
and, being the last to leave, stops it.
"""

from __future__ import annotations

import contextlib
import fcntl
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import IO, Any

# Signals that end a command using the server; each is held back while it starts or stops.
ENDING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_TIMEOUT = 60  # seconds pg_ctl may take to stop the server


def postmaster(pgdata: Path) -> tuple[int, str] | None:
    """(pid, start time) of the postmaster that postmaster.pid names, if that process lives."""
    from pgserver.utils import PostmasterInfo

    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        info = PostmasterInfo(lines)
    except (OSError, ValueError, AssertionError):  # absent, or being written or removed
        return None
    return (info.pid, lines[2].strip()) if info.is_running() else None


class LocalDatabase:
    """One process's use of the embedded server under ``pgdata``."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self.uri = ""
        self._server: Any = None  # pgserver.PostgresServer
        self._users: IO[str] | None = None

    def _beside(self, suffix: str) -> Path:
        return self.pgdata.with_name(self.pgdata.name + suffix)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """The lock a process holds while it joins or leaves."""
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        with open(self._beside(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _owned(self) -> tuple[int, str] | None:
        try:
            pid, started = self._beside(".started").read_text().split(" ", 1)
            return int(pid), started.strip()
        except (OSError, ValueError):
            return None

    def _own(self, running: tuple[int, str]) -> None:
        self._beside(".started").write_text(f"{running[0]} {running[1]}\n")

    def _others_use(self) -> bool:
        """Whether any other process uses the server (a plant process, or another program through
        pgserver). Called holding the exclusive lock and no user lock of our own."""
        from pgserver.utils import DiskList

        assert self._users is not None
        try:
            fcntl.flock(self._users, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self._users, fcntl.LOCK_UN)
        try:
            handles = DiskList(self.pgdata / ".handle_pids.json").get()
        except (OSError, ValueError):  # being rewritten by a pgserver user: assume one is
            return True
        return any(_alive(pid) for pid in handles)

    def join(self) -> None:
        """Start the server, or reuse the running one (holding the exclusive lock)."""
        import pgserver  # local-only dependency: imported only on this path

        self._users = open(self._beside(".users"), "a")  # noqa: SIM115 (held until leave)
        before = postmaster(self.pgdata)
        if before is not None and before != self._owned() and not self._others_use():
            self._own(before)  # left behind by a killed run: ours to stop from now on
        fcntl.flock(self._users, fcntl.LOCK_SH)
        self._server = pgserver.get_server(self.pgdata, cleanup_mode=None)
        if before is None:
            running = postmaster(self.pgdata)
            if running is not None:
                self._own(running)
        self.uri = self._server.get_uri()

    def leave(self) -> None:
        """Stop using the server; stop it if no other process uses it and a plant process
        started it (holding the exclusive lock)."""
        if self._users is None:
            return
        users, self._users = self._users, None
        with users:
            fcntl.flock(users, fcntl.LOCK_UN)
            try:
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # another process still uses it
            running = postmaster(self.pgdata)
            if running is None or running != self._owned() or self._server is None:
                return
            self._stop()

    def _stop(self) -> None:
        # pgserver makes its command functions at import time (_commands._init), so its
        # py.typed module shows none of them
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        try:
            pg_ctl(
                ["-w", "-m", "fast", "stop"],
                pgdata=self.pgdata,
                user=self._server.system_user,
                timeout=STOP_TIMEOUT,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            print(f"plant: could not stop the embedded PostgreSQL: {exc}", file=sys.stderr)
            return
        self._beside(".started").unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _held_signals() -> Iterator[None]:
    """Hold back the ending signals while the server starts or stops (a second Ctrl-C must not
    leave it half started, nor unowned), then act on the first that came."""
    if not _in_main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        pending.append(signum)

    previous = {signum: signal.signal(signum, hold) for signum in ENDING_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if pending:
        signal.raise_signal(pending[0])


@contextlib.contextmanager
def _ending_signals_exit() -> Iterator[None]:
    """SIGTERM and SIGHUP raise SystemExit (as SIGINT raises KeyboardInterrupt), so the block's
    cleanup runs; a signal the process was told to ignore (nohup) stays ignored."""
    if not _in_main_thread():
        yield
        return

    def end(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, end)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def attached(pgdata: Path, ready: Callable[[str], None]) -> Iterator[str]:
    """Use the embedded server under ``pgdata`` for the block, starting it if none runs; yields
    its URL. ``ready(url)`` runs first, while no other process joins or leaves (migrations).
    The last process to leave stops the server, if a plant process started it."""
    database = LocalDatabase(pgdata)
    with _ending_signals_exit():
        try:
            with database.exclusive():
                with _held_signals():
                    database.join()
                ready(database.uri)
            yield database.uri
        finally:
            with _held_signals(), database.exclusive():
                database.leave()
