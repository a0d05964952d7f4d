"""Polling helper for tests that watch background work: wait for a condition, never for a fixed time."""
from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, interval: float = 0.01) -> bool:
    """True as soon as condition() holds; after `timeout`, whatever it says then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
