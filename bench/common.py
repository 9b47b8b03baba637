"""What every benchmark shares: repeats, timing, the result record, and target checks.

A result is a dict: ``name``; ``ratio`` = product time / baseline time (the headline);
``product`` and ``baseline`` sides (median, min and max seconds over the repeats, plus a rate
when the work is countable), or None with a ``skipped`` reason when a side cannot be measured;
``details`` (other figures, as text); ``targets`` (each a text, whether it was met, and by how
much).
"""

from __future__ import annotations

import resource
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

# Set by the driver: 5 for a full run, 3 for --quick.
REPEATS = 5


def stats(samples: Sequence[float]) -> dict[str, float]:
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "samples": list(samples),
    }


def repeat(fn: Callable[[], float], repeats: int | None = None) -> dict[str, float]:
    """Run ``fn`` (which returns the seconds it measured) REPEATS times."""
    return stats([fn() for _ in range(repeats or REPEATS)])


def interleaved(*fns: Callable[[], float]) -> list[dict[str, float]]:
    """Run each of ``fns`` REPEATS times, taking turns (a, b, b, a, a, b, ...), and return
    each one's stats: on a shared machine a slow spell then lands on both sides, not on the
    ratio. Each round reverses the previous one's order, so no side always goes first."""
    samples: list[list[float]] = [[] for _ in fns]
    order = list(range(len(fns)))
    for _ in range(REPEATS):
        for n in order:
            samples[n].append(fns[n]())
        order.reverse()
    return [stats(s) for s in samples]


def with_cpu(fn: Callable[[], float], into: list[float]) -> float:
    """Run ``fn`` (which returns seconds); add the CPU seconds this process used to ``into``."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    took = fn()
    after = resource.getrusage(resource.RUSAGE_SELF)
    into.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return took


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def threads(work: Callable[[int], None], count: int) -> float:
    """Run ``work(n)`` for n in range(count) on as many threads; wall seconds. A worker's
    exception is re-raised here, so a failing product never reports a time."""
    errors: list[BaseException] = []

    def guarded(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=guarded, args=(n,)) for n in range(count)]
    started = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def side(
    timing: dict[str, float] | None,
    ops: int | None = None,
    unit: str | None = None,
    label: str | None = None,
    **extra: Any,
) -> dict[str, Any] | None:
    """One side of a benchmark; ``rate`` = ops per median second when ``unit`` is given."""
    if timing is None:
        return None
    out: dict[str, Any] = {**timing, **extra}
    if label:
        out["label"] = label
    if unit and ops:
        out["rate"] = ops / timing["median"]
        out["unit"] = unit
    return out


def result(
    name: str,
    product: dict[str, Any] | None,
    baseline: dict[str, Any] | None,
    *,
    operations: int | None = None,
    details: Sequence[str] = (),
    targets: Sequence[dict[str, Any]] = (),
    skipped: str | None = None,
) -> dict[str, Any]:
    ratio = None
    if product is not None and baseline is not None and baseline["median"] > 0:
        ratio = product["median"] / baseline["median"]
    return {
        "name": name,
        "ratio": ratio,
        "product": product,
        "baseline": baseline,
        "operations": operations,
        "details": list(details),
        "targets": list(targets),
        "skipped": skipped,
    }


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        if value >= 1:
            return f"{value:.2f} s"
        return f"{value * 1000:.0f} ms" if value >= 0.1 else f"{value * 1000:.2f} ms"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "MB":
        return f"{value:.0f} MB"
    if unit == "x":
        return f"{value:.2f}"
    return f"{value:,.0f} {unit}"


def at_most(what: str, value: float | None, limit: float, unit: str) -> dict[str, Any]:
    """Target ``what <= limit``."""
    text = f"{what} <= {_fmt(limit, unit)}"
    if value is None:
        return {"text": text, "met": None, "value": None, "by": None}
    return {
        "text": text,
        "met": value <= limit,
        "value": value,
        "by": abs(limit - value),
        "shown": _fmt(value, unit),
        "by_shown": _fmt(abs(limit - value), unit),
    }


def at_least(what: str, value: float | None, limit: float, unit: str) -> dict[str, Any]:
    """Target ``what >= limit``."""
    text = f"{what} >= {_fmt(limit, unit)}"
    if value is None:
        return {"text": text, "met": None, "value": None, "by": None}
    return {
        "text": text,
        "met": value >= limit,
        "value": value,
        "by": abs(value - limit),
        "shown": _fmt(value, unit),
        "by_shown": _fmt(abs(value - limit), unit),
    }


def target_text(t: dict[str, Any]) -> str:
    if t["met"] is None:
        return f"target: {t['text']}: not measured"
    verdict = "met" if t["met"] else "MISSED"
    return f"target: {t['text']}: {verdict} by {t['by_shown']} ({t['shown']})"
