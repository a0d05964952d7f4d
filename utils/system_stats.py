"""CPU and memory readings from psutil, cached briefly so reading them is cheap."""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class SystemSnapshot:
    cpu_count: int
    cpu_percent: float
    memory_percent: float
    memory_available_mb: float
    memory_total_mb: float
    process_rss_mb: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)  # plain values only: same as asdict(), much cheaper


class SystemSampler:
    """Reads psutil at most every `max_age` seconds; everyone else gets the cached snapshot."""

    def __init__(self, max_age: float = 0.5) -> None:
        self._max_age = max_age
        self._lock = threading.Lock()  # guards _snapshot and _taken (one psutil read at a time)
        self._process = psutil.Process(os.getpid())
        psutil.cpu_percent(interval=None)  # first call primes the counter
        self._taken = 0.0
        self._snapshot = self._read()

    def _read(self) -> SystemSnapshot:
        memory = psutil.virtual_memory()
        return SystemSnapshot(
            cpu_count=os.cpu_count() or 1,
            cpu_percent=psutil.cpu_percent(interval=None),
            memory_percent=memory.percent,
            memory_available_mb=memory.available / 2**20,
            memory_total_mb=memory.total / 2**20,
            process_rss_mb=self._process.memory_info().rss / 2**20,
        )

    def snapshot(self) -> SystemSnapshot:
        now = time.monotonic()
        if now - self._taken < self._max_age:
            return self._snapshot
        with self._lock:
            if now - self._taken >= self._max_age:
                self._snapshot = self._read()
                self._taken = now
        return self._snapshot
