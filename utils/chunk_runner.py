"""Runs one chunk of items inside a worker thread or process, isolating each item.

An outcome is a plain tuple so that sending thousands of them back from a
process costs little: (ok, value, attempts, seconds). For a failure, value is
(error type name, message, exception or None); the exception object travels only
inside one process, where it can be re-raised for `submit_task` callers.

A process chunk whose items all succeeded at the first attempt (the usual case)
comes back compact instead: a tuple (values, seconds) with seconds an array of
doubles, which pickles and unpickles several times faster than one tuple per item.
"""
from __future__ import annotations

import threading
import time
from array import array
from typing import Any, Callable, Sequence

from utils.item_errors import is_transient

Outcome = tuple  # (ok: bool, value: Any, attempts: int, seconds: float)


class ChunkWatch:
    """Shared between a thread worker and the manager so a stuck item can be timed out."""

    __slots__ = ("lock", "outcomes", "current_started", "abandoned", "thread", "waited")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outcomes: list[Outcome] = []
        self.current_started: float | None = None
        self.abandoned = False
        self.thread: threading.Thread | None = None
        self.waited = 0.0  # probe chunks: seconds the thread was runnable but had no CPU (a busy machine)


_schedstat = {"ok": True}
_thread_state = threading.local()  # .waited: this thread's runqueue wait when its last chunk ended


def runqueue_wait() -> float | None:
    """Seconds the calling thread has spent runnable but waiting for a CPU (Linux schedstat), or None."""
    if not _schedstat["ok"]:
        return None
    try:
        with open("/proc/thread-self/schedstat", "rb") as stat:
            return int(stat.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        _schedstat["ok"] = False  # not Linux, or no schedstat: probes go by CPU time alone
        return None


def _backoff(attempt: int, base: float) -> float:
    return min(2.0, base * (2 ** (attempt - 1)))


def run_item(fn: Callable, item: Any, retries: int, backoff: float, keep_exception: bool) -> Outcome:
    """Call fn(item), retrying transient errors with growing waits."""
    started = time.perf_counter()
    try:
        return (True, fn(item), 1, time.perf_counter() - started)
    except Exception as exc:  # noqa: BLE001 - every item error is isolated and reported
        return _after_failure(fn, item, exc, retries, backoff, keep_exception, started)


def _after_failure(fn: Callable, item: Any, exc: Exception, retries: int, backoff: float, keep_exception: bool,
                   started: float) -> Outcome:
    """The first attempt raised `exc`: retry transient errors with growing waits, or report the failure."""
    attempt = 1
    while attempt <= retries and is_transient(exc):
        time.sleep(_backoff(attempt, backoff))
        attempt += 1
        try:
            return (True, fn(item), attempt, time.perf_counter() - started)
        except Exception as again:  # noqa: BLE001
            exc = again
    message = str(exc) or exc.__class__.__name__
    return (False, (type(exc).__name__, message, exc if keep_exception else None), attempt,
            time.perf_counter() - started)


def run_chunk_in_process(fn: Callable, items: Sequence[Any], retries: int,
                         backoff: float) -> tuple[list[Outcome] | tuple[list, array], float, float]:
    """Process-side entry: outcomes (compact when every item succeeded first time) plus CPU and wall seconds."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    clock = time.perf_counter
    values: list = []
    seconds = array("d")
    outcomes: list[Outcome] | None = None  # the general form, from the first failure or retry on
    started = clock()
    for item in items:
        try:
            value = fn(item)
        except Exception as exc:  # noqa: BLE001 - isolated per item
            if outcomes is None:
                outcomes = [(True, v, 1, s) for v, s in zip(values, seconds)]
            outcomes.append(_after_failure(fn, item, exc, retries, backoff, False, started))
            started = clock()
            continue
        now = clock()
        if outcomes is None:
            values.append(value)
            seconds.append(now - started)
        else:
            outcomes.append((True, value, 1, now - started))
        started = now
    result = (values, seconds) if outcomes is None else outcomes
    return result, time.process_time() - cpu0, time.perf_counter() - wall0


def run_chunk_in_thread(fn: Callable, items: Sequence[Any], retries: int, backoff: float,
                        watch: ChunkWatch, cancel: threading.Event, time_budget: float | None) -> tuple[float, float]:
    """Thread-side entry: appends outcomes to `watch` as it goes, so a timeout keeps finished items.

    Stops early when the job is cancelled, the manager abandoned this chunk, or the
    time budget of a probe chunk is spent; the caller requeues what was not run.
    """
    watch.thread = threading.current_thread()
    # Probe chunks also note time lost to other processes: on a busy machine CPU-bound work gets
    # less CPU than wall time, and must not be mistaken for I/O-bound work.
    # The reading at the end of this thread's previous chunk is the start: reading the file now would
    # hand the GIL around between all probe threads just as they start, and delay the probe.
    waited0 = getattr(_thread_state, "waited", None)
    if waited0 is None and time_budget is not None:
        waited0 = runqueue_wait()  # a new thread's first chunk is a probe
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    append = watch.outcomes.append
    for item in items:
        if cancel.is_set() or watch.abandoned:
            break
        watch.current_started = time.monotonic()
        outcome = run_item(fn, item, retries, backoff, keep_exception=True)
        with watch.lock:
            if watch.abandoned:
                break
            append(outcome)
            watch.current_started = None
        if time_budget is not None and time.perf_counter() - wall0 >= time_budget:
            break
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    waited1 = runqueue_wait()
    _thread_state.waited = waited1
    if time_budget is not None and waited0 is not None and waited1 is not None:
        watch.waited = max(0.0, waited1 - waited0)
    return cpu, wall
