"""Per-worker resources: open a model or a connection once per worker, not once per item.

Each worker thread (and each thread of a worker process) has its own copy, so a
resource that is not thread-safe is never shared between two workers.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
_local = threading.local()


def worker_resource(key: str, factory: Callable[[], T]) -> T:
    """The calling worker's instance of `key`, made by `factory` on first use."""
    cache = getattr(_local, "resources", None)
    if cache is None:
        cache = _local.resources = {}
    if key not in cache:
        cache[key] = factory()
    return cache[key]
