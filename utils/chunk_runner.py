"""Runs one chunk of items inside a worker thread or process, isolating each item.

An outcome is a plain tuple so that sending thousands of them back from a
process costs little: (ok, value, attempts, seconds). For a failure, value is
(error type name, message, exception or None, traceback text); the exception object
travels only inside one process, where it can be re-raised for `submit_task` callers.

A process chunk whose items all succeeded at the first attempt (the usual case)
comes back compact instead: a tuple (values, seconds) with seconds an array of
doubles, which pickles and unpickles several times faster than one tuple per item.
"""
from __future__ import annotations

import threading
import time
import traceback
from array import array
from collections.abc import Callable, Sequence
from typing import Any

from utils.item_errors import is_transient

Outcome = tuple  # (ok: bool, value: Any, attempts: int, seconds: float)
TRACEBACK_FRAMES = 12  # innermost frames kept of a failed item's traceback
TRACEBACK_CHARS = 8000


class ChunkWatch:
    """Shared between a thread worker and the manager so a stuck item can be timed out."""

    __slots__ = ("lock", "outcomes", "current_started", "abandoned", "thread", "ran")

    def __init__(self) -> None:
        self.lock = threading.Lock()  # guards outcomes and abandoned (the worker appends, a timeout abandons)
        self.outcomes: list[Outcome] = []
        self.current_started: float | None = None
        self.abandoned = False
        self.thread: threading.Thread | None = None
        self.ran: tuple[float, float] | None = None  # monotonic start and end of the run in the thread


def runqueue_wait(thread_id: int | None = None) -> float | None:
    """Seconds a thread (default: the calling one) has spent runnable but waiting for a CPU, or None.

    From Linux schedstat; None elsewhere.
    """
    path = f"/proc/self/task/{thread_id}/schedstat" if thread_id else "/proc/thread-self/schedstat"
    try:
        with open(path, "rb") as stat:
            return int(stat.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


class GilSampler:
    """How busy the GIL is while a probe runs, whatever else the machine is doing.

    A helper thread naps 0.5 ms over and over and times each nap. When a nap ends the
    thread needs the GIL back: while CPU-bound Python holds it, that takes up to the
    switch interval (5 ms); while threads wait on I/O (or run code that releases the
    GIL) it is free at once. The time the helper sat runnable without a CPU (other
    processes) is read from schedstat and taken out, so a busy machine does not look
    like a busy GIL. Linux only; elsewhere `busy()` is None and the probe goes by CPU
    time alone. The loop reads no file: each read would hand the GIL around again.
    """

    NAP_S = 0.0005
    SLACK_S = 0.0001  # timer slack and the loop itself, per nap
    MAX_S = 5.0  # a probe stuck on a hanging item must not keep the helper alive

    def __init__(self) -> None:
        self._stopped = False
        self._walls: list[float] = []
        self._thread_id: int | None = None
        self._waited0: float | None = None
        self._thread = threading.Thread(target=self._run, name="spindle-gil-probe", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self._thread_id = threading.get_native_id()
        self._waited0 = runqueue_wait()
        if self._waited0 is None:
            return
        clock, nap, walls = time.perf_counter, self.NAP_S, self._walls
        deadline = clock() + self.MAX_S
        while not self._stopped and clock() < deadline:
            started = clock()
            time.sleep(nap)
            walls.append(clock() - started)

    def stop(self) -> None:
        self._stopped = True

    def busy(self) -> float | None:
        """The share of the sampled time the GIL was held by others (0..1); None when unknown."""
        walls, waited0 = list(self._walls), self._waited0
        if len(walls) < 2 or waited0 is None:
            return None
        waited1 = runqueue_wait(self._thread_id)
        if waited1 is None:
            return None
        total = sum(walls)
        held = total - len(walls) * (self.NAP_S + self.SLACK_S) - max(0.0, waited1 - waited0)
        return min(1.0, max(0.0, held / total))


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
    trace = "".join(traceback.format_exception(exc, limit=-TRACEBACK_FRAMES))[-TRACEBACK_CHARS:]
    return (False, (type(exc).__name__, message, exc if keep_exception else None, trace), attempt,
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
    ran0 = time.monotonic()
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
    watch.ran = (ran0, time.monotonic())
    return cpu, wall
