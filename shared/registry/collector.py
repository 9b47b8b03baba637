"""Pausing Python's cyclic garbage collector while a bulk create builds its items.

A batch of 10,000 items makes tens of thousands of dicts and lists that all live until the
batch ends. Each one counts towards the collector's next run, and every run walks the young
objects again, all of them survivors: about 55 ms of a 10,000-item batch's 115 ms of input
checks, measured on this project's bench machine (``bench/bulk.py``). While paused, reference
counting frees everything acyclic as always; only reference cycles, made by any thread, wait
for the collector's first run after the last pause ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_pauses = 0  # pauses in progress, in any thread
_resume = False  # whether the collector was enabled when the first of them began


@contextmanager
def paused() -> Iterator[None]:
    """No automatic collection until every pause in progress has ended; then the collector
    is as it was before the first (a collector disabled by someone else stays disabled)."""
    global _pauses, _resume
    with _lock:
        if _pauses == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1
            if _pauses == 0 and _resume:
                gc.enable()
