"""Live counters for one worker pool, built so that reading a snapshot is cheap.

Item times go into log-spaced buckets 2 % wide (a bucket's midpoint is within 1 % of any
value in it), kept per 10-second slice for the last minute: p95 is read over that rolling
window, within 2 % of the exact value. Throughput counts items per second over the last
10 seconds. Both are updated once per finished chunk, under the pool's metrics lock.
"""
from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

BUCKET_RATIO = 1.02  # each bucket is 2 % wider than the one below it
_LOG_RATIO = math.log(BUCKET_RATIO)
LOWEST_S = 1e-6  # durations below 1 µs share the first bucket
SLICE_S = 10  # seconds of item times per slice
WINDOW_SLICES = 6  # p95 over the last 6 slices: one minute
THROUGHPUT_WINDOW_S = 10


def bucket_of(seconds: float) -> int:
    if seconds <= LOWEST_S:
        return 0
    return int(math.log(seconds / LOWEST_S) / _LOG_RATIO) + 1


def bucket_value(index: int) -> float:
    """A representative duration for the bucket: the geometric middle of its bounds."""
    if index == 0:
        return LOWEST_S
    return LOWEST_S * BUCKET_RATIO ** (index - 0.5)


def percentile(counts: Counter[int], share: float) -> float:
    """The duration below which `share` of the counted items fall (0.0 when nothing was counted)."""
    total = sum(counts.values())
    if not total:
        return 0.0
    threshold, running = share * total, 0
    for index in sorted(counts):
        running += counts[index]
        if running >= threshold:
            return bucket_value(index)
    return bucket_value(max(counts))


@dataclass
class PoolCounters:
    completed: int = 0
    failed: int = 0
    retried: int = 0
    timed_out: int = 0
    cancelled: int = 0
    chunks: int = 0
    total_seconds: float = 0.0


class PoolMetrics:
    """Counters for one pool. Writers hold the lock briefly; readers copy a few numbers.

    With timings=False (ENABLE_TASK_MONITORING=false) only the counters are kept: no item
    times, percentiles or throughput.
    """

    def __init__(self, timings: bool = True) -> None:
        self.timings = timings
        self._lock = threading.Lock()  # guards counters, _slices, _per_second, _version and _p95_cache
        self.counters = PoolCounters()
        self._version = 0  # bumped by every record: a cached p95 is good while it stays the same
        self._p95_cache: tuple[int, int, float] | None = None  # (version, oldest slice, p95)
        self._slices: deque[tuple[int, Counter[int]]] = deque(maxlen=WINDOW_SLICES)
        self._per_second: deque[list[int]] = deque(maxlen=THROUGHPUT_WINDOW_S + 1)
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.counters = PoolCounters()
            self._slices = deque(maxlen=WINDOW_SLICES)
            self._per_second = deque(maxlen=THROUGHPUT_WINDOW_S + 1)
            self._version += 1

    def record_items(self, durations: list[float], failed: int, retried: int, timed_out: int = 0,
                     cancelled: int = 0) -> None:
        """Account a finished chunk: its item durations and how many failed or were retried."""
        now = time.monotonic()
        with self._lock:
            counters = self.counters
            counters.completed += len(durations) - failed
            counters.failed += failed
            counters.retried += retried
            counters.timed_out += timed_out
            counters.cancelled += cancelled
            counters.chunks += 1
            if not self.timings:
                return
            counters.total_seconds += sum(durations)
            self._version += 1
            slice_id = int(now // SLICE_S)
            if not self._slices or self._slices[-1][0] != slice_id:
                self._slices.append((slice_id, Counter()))
            counts = self._slices[-1][1]
            for seconds in durations:
                counts[bucket_of(seconds)] += 1
            now_s = int(now)
            if self._per_second and self._per_second[-1][0] == now_s:
                self._per_second[-1][1] += len(durations)
            else:
                self._per_second.append([now_s, len(durations)])

    def record_cancelled(self, count: int) -> None:
        with self._lock:
            self.counters.cancelled += count

    def items_per_s(self) -> float:
        now_s = int(time.monotonic())
        with self._lock:
            recent = sum(n for second, n in self._per_second if now_s - THROUGHPUT_WINDOW_S <= second < now_s)
        return recent / THROUGHPUT_WINDOW_S

    def p95(self) -> float:
        """The 95th percentile item time over the last minute (0.0 when none finished)."""
        oldest = int(time.monotonic() // SLICE_S) - WINDOW_SLICES + 1
        with self._lock:
            cached = self._p95_cache
            if cached is not None and cached[0] == self._version and cached[1] == oldest:
                return cached[2]  # dashboards poll often; item times change only when a chunk finishes
            version = self._version
            merged: Counter[int] = Counter()
            for slice_id, counts in self._slices:
                if slice_id >= oldest:
                    merged.update(counts)
        value = percentile(merged, 0.95)
        with self._lock:
            self._p95_cache = (version, oldest, value)
        return value

    def snapshot(self) -> dict:
        """Averages, p95 and items/s; O(buckets in use), no sorting of items."""
        with self._lock:
            c = self.counters
            if not c.chunks and not c.cancelled:  # an idle pool: nothing to add up
                return dict(completed=0, failed=0, retried=0, timed_out=0, cancelled=0, chunks=0,
                            success_rate=1.0, avg_task_s=0.0, p95_task_s=0.0, items_per_s=0.0)
            finished = c.completed + c.failed
            counters: dict = dict(completed=c.completed, failed=c.failed, retried=c.retried,
                                  timed_out=c.timed_out, cancelled=c.cancelled, chunks=c.chunks)
            average = c.total_seconds / finished if finished else 0.0
        counters.update(
            success_rate=(counters["completed"] / finished) if finished else 1.0,
            avg_task_s=average,
            p95_task_s=self.p95(),
            items_per_s=self.items_per_s(),
        )
        return counters
