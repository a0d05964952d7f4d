"""A thread-safe rate limiter for calls to metered services (e.g. geocoding).

Why: googlemaps' own per-second limiter is not thread-safe and exists once per
client, so Spindle owns the rate limit: one `RateLimiter` per service name
(held by the threading manager), shared by every worker thread.

How: virtual scheduling (GCRA). Each `acquire` reserves the next free slot
under a lock, then sleeps outside the lock until that slot. Slots are fixed
points in time, so a thread that wakes late does not push later slots back:
the long-run rate stays on the configured value however many threads wait.
`burst` lets that many calls through back to back after an idle spell.
"""
from __future__ import annotations

import threading
import time


class RateLimiter:
    """Allow at most `rate_per_s` acquisitions a second on average, `burst` at once."""

    def __init__(self, rate_per_s: float, burst: int = 1) -> None:
        if not rate_per_s > 0:
            raise ValueError(f"rate_per_s must be a positive number, got {rate_per_s!r}")
        if int(burst) != burst or burst < 1:
            raise ValueError(f"burst must be a whole number >= 1, got {burst!r}")
        self._rate = float(rate_per_s)
        self._burst = int(burst)
        self._interval = 1.0 / self._rate
        self._tolerance = (self._burst - 1) * self._interval
        self._lock = threading.Lock()
        self._next_free = time.monotonic()  # theoretical arrival time of the next call
        self._acquired = 0
        self._rejected = 0
        self._waited_s = 0.0
        self._created = time.monotonic()

    @property
    def rate_per_s(self) -> float:
        return self._rate

    @property
    def burst(self) -> int:
        return self._burst

    def acquire(self, timeout: float | None = None) -> bool:
        """Block until a slot is free; False (nothing reserved) if that is more than `timeout` s away."""
        now = time.monotonic()
        with self._lock:
            slot = max(now, self._next_free - self._tolerance)
            wait = slot - now
            if timeout is not None and wait > timeout:
                self._rejected += 1
                return False
            self._next_free = max(self._next_free, slot) + self._interval
            self._acquired += 1
            self._waited_s += wait
        if wait > 0:
            time.sleep(wait)
        return True

    def try_acquire(self) -> bool:
        """Take a slot only if one is free now."""
        return self.acquire(timeout=0.0)

    def stats(self) -> dict:
        """Counters for the UI and benchmarks (a snapshot; cheap to call)."""
        with self._lock:
            elapsed = time.monotonic() - self._created
            return {
                "rate_per_s": self._rate,
                "burst": self._burst,
                "acquired": self._acquired,
                "rejected": self._rejected,
                "total_wait_s": round(self._waited_s, 6),
                "mean_wait_s": round(self._waited_s / self._acquired, 6) if self._acquired else 0.0,
                "backlog_s": round(max(0.0, self._next_free - time.monotonic()), 6),
                "elapsed_s": round(elapsed, 6),
            }

    def __repr__(self) -> str:
        return f"RateLimiter(rate_per_s={self._rate}, burst={self._burst})"
