"""Warm a process pool before a visitor's batch arrives: start its workers and pay their one-off costs.

Why: a fresh worker spends a second or more importing pandas, the checkers or an analyser's
libraries before its first item. Done when a page opens, the visitor's upload and first run
find the workers ready. Every page warms its pools through `warm_pool_workers`, at most once
per REWARM_AFTER_S per server and purpose; the server's own slow imports go through
`import_in_background`.
"""
from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable
from typing import Any

REWARM_AFTER_S = 600.0  # workers may have been replaced since (a crash, a resize): warm again after this long
HANDOUT_PAUSE_S = 0.2  # a warming item stays busy this long, so the next one goes to another worker

_warmed: dict[str, float] = {}  # purpose (the warming job's name) → when this server last warmed for it
_warmed_lock = threading.Lock()  # guards _warmed


def warm_pool_workers(manager: Any, pool: str, warm_one: Callable[[int], Any], name: str) -> bool:
    """Start `pool` and run `warm_one(worker_number)` once in each of its workers, as a small background job.

    `name` names the job and the purpose: warming for one purpose happens at most once per REWARM_AFTER_S.
    Returns at once; True when it started a warming job now. `warm_one` must be picklable and should end
    with `pause_for_handout()` so each item lands on another worker.
    """
    now = time.monotonic()
    with _warmed_lock:
        if now - _warmed.get(name, -REWARM_AFTER_S) < REWARM_AFTER_S:
            return False
        _warmed[name] = now
    try:
        manager.warm(pool)
        workers = int(manager.pool_settings(pool)["workers"])
        manager.map(warm_one, range(workers), backend="process", pool=pool, chunk_size=1, name=name)
    except Exception:  # noqa: BLE001 - a cold pool only makes the first batch slower
        with _warmed_lock:
            _warmed.pop(name, None)
        return False
    return True


def pause_for_handout() -> None:
    """In a worker: stay busy a moment, so the pool hands the next warming item to another worker."""
    time.sleep(HANDOUT_PAUSE_S)


def import_in_background(modules: tuple[str, ...], name: str) -> None:
    """Import what a page will need into this (server) process in a daemon thread named `name`."""
    threading.Thread(target=_import_quietly, args=(modules,), name=name, daemon=True).start()


def _import_quietly(modules: tuple[str, ...]) -> None:
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - only a head start: the page imports it again and reports
            return
