"""The shared rate limiter holds the configured rate however many threads wait on it."""
from __future__ import annotations

import threading
import time

import pytest

from utils.rate_limiter import RateLimiter


def _achieved_rate(stamps: list[float]) -> float:
    stamps = sorted(stamps)
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def test_eight_threads_together_get_the_configured_rate_within_5_percent():
    limiter = RateLimiter(rate_per_s=100)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(40):
            assert limiter.acquire()
            now = time.monotonic()
            with lock:
                stamps.append(now)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(stamps) == 320
    achieved = _achieved_rate(stamps)
    assert achieved == pytest.approx(100, rel=0.05), f"achieved {achieved:.1f}/s for 100/s configured"
    assert limiter.stats()["acquired"] == 320


def test_burst_lets_that_many_through_at_once_then_limits():
    limiter = RateLimiter(rate_per_s=2, burst=5)
    assert all(limiter.try_acquire() for _ in range(5))
    assert not limiter.try_acquire()


def test_burst_does_not_raise_the_long_run_rate():
    limiter = RateLimiter(rate_per_s=200, burst=10)
    stamps = []
    for _ in range(10):  # the burst
        limiter.acquire()
    for _ in range(200):
        limiter.acquire()
        stamps.append(time.monotonic())
    assert _achieved_rate(stamps) == pytest.approx(200, rel=0.05)


def test_timeout_gives_up_without_taking_a_slot():
    limiter = RateLimiter(rate_per_s=1)
    assert limiter.acquire()
    assert limiter.acquire(timeout=0.01) is False
    stats = limiter.stats()
    assert stats["acquired"] == 1
    assert stats["rejected"] == 1
    # the refused call reserved nothing: the next slot is still ~1 s away, not 2
    assert stats["backlog_s"] <= 1.0


def test_stats_report_configuration_and_waiting():
    limiter = RateLimiter(rate_per_s=50, burst=2)
    for _ in range(6):
        limiter.acquire()
    stats = limiter.stats()
    assert stats["rate_per_s"] == 50 and stats["burst"] == 2
    assert stats["acquired"] == 6
    assert stats["total_wait_s"] > 0  # 4 of the 6 had to wait for a slot


@pytest.mark.parametrize("rate, burst", [(0, 1), (-5, 1), (10, 0), (10, 1.5)])
def test_nonsense_settings_are_refused_with_the_value_named(rate, burst):
    with pytest.raises(ValueError, match="rate_per_s|burst"):
        RateLimiter(rate, burst)
