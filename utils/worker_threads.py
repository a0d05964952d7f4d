"""A resizable pool of worker threads that can replace a stuck worker.

concurrent.futures.ThreadPoolExecutor can neither shrink nor give up on a thread
that hangs; this pool does both, so a live resize loses no work and a timed-out
item frees its worker slot at once (the stuck thread retires when it returns).
"""
from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)
_RETIRE = object()


class WorkerThreads:
    def __init__(self, name: str, workers: int, initializer: Callable[[], None] | None = None) -> None:
        self.name = name
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards _threads, _to_retire, _target and _times
        self._threads: set[threading.Thread] = set()
        self._to_retire: set[threading.Thread] = set()
        self._initializer = initializer
        self._counter = itertools.count(1)
        self._target = 0
        # Per worker thread (by name): [started, seconds running work, seconds waiting for work].
        self._times: dict[str, list[float]] = {}
        self.resize(workers)

    @property
    def size(self) -> int:
        return self._target

    def set_initializer(self, initializer: Callable[[], None] | None) -> None:
        """New threads run it once; threads already running keep what they have."""
        self._initializer = initializer

    def submit(self, work: Callable[[], None]) -> None:
        self._queue.put(work)

    def resize(self, workers: int) -> None:
        """Grow by starting threads; shrink by retiring threads after their current work."""
        with self._lock:
            change = workers - self._target
            self._target = workers
            for _ in range(max(0, change)):
                self._start_thread()
        for _ in range(max(0, -change)):
            self._queue.put(_RETIRE)

    def abandon(self, thread: threading.Thread | None) -> None:
        """Give up on a stuck thread: start a replacement now, retire the stuck one when it returns."""
        with self._lock:
            if thread is not None and thread in self._threads:
                self._to_retire.add(thread)
            self._start_thread()

    def retiring(self, thread: threading.Thread) -> bool:
        """True for a thread given up on after a timeout: it must stop once its work returns."""
        with self._lock:
            return thread in self._to_retire

    def worker_times(self) -> list[dict]:
        """Each live worker's busy and idle seconds since it started (MPIRE's insights, for threads)."""
        now = time.monotonic()
        with self._lock:
            alive = {t.name for t in self._threads}
            rows = [{"worker": name, "busy_s": busy, "idle_s": idle, "age_s": now - started}
                    for name, (started, busy, idle) in self._times.items() if name in alive]
        return sorted(rows, key=lambda r: r["worker"])

    def alive(self) -> int:
        with self._lock:
            return len(self._threads) - len(self._to_retire)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Ask every thread to stop; wait up to `timeout`. True when all stopped in time."""
        with self._lock:
            threads = list(self._threads)
            self._target = 0
        for _ in threads:
            self._queue.put(_RETIRE)
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in threads:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
        return not any(t.is_alive() for t in threads)

    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._loop, name=f"spindle-{self.name}-{next(self._counter)}", daemon=True)
        self._threads.add(thread)
        thread.start()

    def _loop(self) -> None:
        me = threading.current_thread()
        clock = time.monotonic
        times = [clock(), 0.0, 0.0]
        with self._lock:
            self._times[me.name] = times
        try:
            if self._initializer is not None:
                self._initializer()
        except Exception:  # noqa: BLE001 - a broken hook must not kill the pool silently
            log.exception("worker initializer failed in %s", me.name)
        try:
            while True:
                waited = clock()
                work = self._queue.get()
                started = clock()
                times[2] += started - waited
                if work is _RETIRE:
                    return
                try:
                    work()
                except Exception:  # noqa: BLE001 - work items report their own errors
                    log.exception("unhandled error in %s", me.name)
                times[1] += clock() - started
                del work  # an idle worker holds nothing of its last chunk (CPython's thread pool does the same)
                with self._lock:
                    if me in self._to_retire:
                        return
        finally:
            with self._lock:
                self._threads.discard(me)
                self._to_retire.discard(me)
                self._times.pop(me.name, None)
