"""Live counters for one worker pool, built so that reading a snapshot is cheap.

Task times go into a fixed log-spaced histogram (p95 without sorting), and
throughput into one-second buckets; both are updated once per finished chunk.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

# 60 buckets from 10 µs to ~1000 s, each a factor 10**(1/6) (~1.47) wide.
_BUCKETS = 60
_LOW = 1e-5
_STEP = 10 ** (1 / 6)
_LOG_STEP = math.log(_STEP)
_THROUGHPUT_WINDOW_S = 10


def _bucket(seconds: float) -> int:
    if seconds <= _LOW:
        return 0
    return min(_BUCKETS - 1, int(math.log(seconds / _LOW) / _LOG_STEP) + 1)


def _bucket_upper(index: int) -> float:
    return _LOW * _STEP ** index


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
    """Counters for one pool. Writers hold the lock briefly; readers copy a few numbers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.counters = PoolCounters()
            self._histogram = [0] * _BUCKETS
            self._per_second: deque[list[float]] = deque(maxlen=_THROUGHPUT_WINDOW_S + 1)

    def record_items(self, durations: list[float], failed: int, retried: int, timed_out: int = 0,
                     cancelled: int = 0) -> None:
        """Account a finished chunk: its item durations and how many failed or were retried."""
        now_s = int(time.monotonic())
        histogram = self._histogram
        with self._lock:
            for seconds in durations:
                histogram[_bucket(seconds)] += 1
            counters = self.counters
            counters.completed += len(durations) - failed
            counters.failed += failed
            counters.retried += retried
            counters.timed_out += timed_out
            counters.cancelled += cancelled
            counters.chunks += 1
            counters.total_seconds += sum(durations)
            if self._per_second and self._per_second[-1][0] == now_s:
                self._per_second[-1][1] += len(durations)
            else:
                self._per_second.append([now_s, len(durations)])

    def record_cancelled(self, count: int) -> None:
        with self._lock:
            self.counters.cancelled += count

    def snapshot(self) -> dict:
        """Averages, p95 and items/s over the last seconds; O(buckets), no sorting."""
        now_s = int(time.monotonic())
        with self._lock:
            c = self.counters
            if not c.chunks and not c.cancelled:  # an idle pool: nothing to add up
                return dict(completed=0, failed=0, retried=0, timed_out=0, cancelled=0, chunks=0,
                            success_rate=1.0, avg_task_s=0.0, p95_task_s=0.0, items_per_s=0.0)
            finished = c.completed + c.failed
            counts = list(self._histogram)
            recent = sum(n for second, n in self._per_second if now_s - _THROUGHPUT_WINDOW_S <= second < now_s)
            counters = dict(completed=c.completed, failed=c.failed, retried=c.retried, timed_out=c.timed_out,
                            cancelled=c.cancelled, chunks=c.chunks)
            average = c.total_seconds / finished if finished else 0.0
        total = sum(counts)
        p95 = 0.0
        if total:
            threshold, running = 0.95 * total, 0
            for index, count in enumerate(counts):
                running += count
                if running >= threshold:
                    p95 = _bucket_upper(index)
                    break
        counters.update(
            success_rate=(counters["completed"] / finished) if finished else 1.0,
            avg_task_s=average,
            p95_task_s=p95,
            items_per_s=recent / _THROUGHPUT_WINDOW_S,
        )
        return counters
