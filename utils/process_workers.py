"""A warm pool of worker processes for CPU-bound Python, rebuilt when a worker dies or hangs.

Uses an explicit forkserver (or spawn) context: forking a multithreaded server can
deadlock. The pool is created once, warmed, and replaced only on resize or breakage.
"""
from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import select
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from utils.task_registry import KNOWN_TASK_MODULES

log = logging.getLogger(__name__)

# Address space a worker process needs before any item's data: the interpreter, the project's
# modules and their libraries, thread stacks and allocator arenas, with room to spare. Measured in an
# untrusted-pool worker that has served every page: ~380 MB for numpy, pandas, Pillow, soundfile; the
# sheet reader, scipy and the hyphenation dictionaries add ~0.4 GB; Lingua (the Text page's language
# model, Rust) reserves ~1 GB at its first use. With 1,024 MB here a worker that had read a sheet or
# warmed the Text page was past its cap before any item: imports failed ("failed to map segment") and
# Rust allocators aborted the worker, so media jobs ran minutes instead of seconds.
INTERPRETER_ALLOWANCE_MB = 3072


def address_space_limit_mb(per_task_mb: int) -> int:
    """RLIMIT_AS for a worker process that may spend `per_task_mb` on one item's data."""
    return per_task_mb + INTERPRETER_ALLOWANCE_MB


def limit_memory(limit_mb: int, then: Callable[[], None] | None = None) -> None:
    """Worker-process initializer: cap this process's address space, then run the pool's own initializer.

    An item that asks for more gets MemoryError (or, in C code that cannot cope, kills only this
    worker, which the manager replaces and blames on that item alone).
    """
    import resource

    limit = limit_mb * 2**20
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    if then is not None:
        then()


def exit_with_server(server_pid: int, then: Callable[[], None] | None = None) -> None:
    """Worker-process initializer: end this worker when the server process ends, then run `then`.

    A server that is SIGKILLed (or leaves with os._exit) cannot shut its pool down. Its workers
    would live on, holding memory and sometimes spinning: each forkserver worker holds the
    forkserver's "alive" pipe open, so the forkserver never sees its client go and never exits
    either. A daemon thread waits on a pidfd of the server (Linux 5.3+), which becomes readable the
    moment the server exits, and ends the worker at once, even in the middle of an item.
    """
    if not hasattr(os, "pidfd_open"):  # not Linux: workers end when their queue breaks, as before
        if then is not None:
            then()
        return
    try:
        server = os.pidfd_open(server_pid)
    except ProcessLookupError:  # the server died while this worker started
        os._exit(1)
    threading.Thread(target=_exit_when_readable, args=(server,), name="exit-with-server", daemon=True).start()
    if then is not None:
        then()


def _exit_when_readable(pidfd: int) -> None:
    select.select([pidfd], [], [])
    os._exit(1)


def _noop() -> int:
    return 0


def _start_context() -> multiprocessing.context.BaseContext:
    """The forkserver, which imports our task modules once, so every worker it forks starts with them loaded.

    Without the preload each new worker spent about a second importing pandas and the checkers
    before its first item, on every cold start and after every replaced worker.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", *KNOWN_TASK_MODULES])  # takes effect when the forkserver starts
    return context


class ProcessWorkers:
    def __init__(self, name: str, workers: int, initializer: Callable[[], None] | None = None) -> None:
        self.name = name
        self.workers = workers
        self._initializer = initializer
        self._lock = threading.Lock()  # guards _executor, _retired, generation, workers and _initializer
        self._ready_lock = threading.Lock()  # guards the start-up countdown of the newest generation
        self._executor: ProcessPoolExecutor | None = None
        self._retired: list[ProcessPoolExecutor] = []
        self.generation = 0
        self.rebuilds = 0
        # generation -> when all its workers had started (None while starting). A chunk's timeout
        # counts from then: on a busy machine starting workers can take seconds.
        self._ready: dict[int, float | None] = {}

    def _ensure(self) -> ProcessPoolExecutor:
        if self._executor is None:
            initializer = functools.partial(exit_with_server, os.getpid(), self._initializer)
            self._executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=_start_context(),
                                                 initializer=initializer)
            self.generation += 1
            generation, starting = self.generation, [self.workers]
            self._ready[generation] = None
            self._ready.pop(generation - 8, None)

            def started(_future: Future) -> None:  # in the executor's thread; any outcome counts
                with self._ready_lock:
                    starting[0] -= 1
                    if starting[0] == 0:
                        self._ready[generation] = time.monotonic()

            for _ in range(self.workers):  # start every worker now, so the first real chunk is not slowed
                self._executor.submit(_noop).add_done_callback(started)
        return self._executor

    def ready_at(self, generation: int) -> float | None:
        """When every worker of that pool generation had started; None while they are starting."""
        return self._ready.get(generation, 0.0)

    def warm(self) -> None:
        with self._lock:
            self._ensure()

    def submit(self, fn: Callable, *args: Any) -> tuple[Future, int]:
        """Submit and say which pool generation took it, so breakage is handled once per generation."""
        with self._lock:
            executor = self._ensure()
            return executor.submit(fn, *args), self.generation

    def resize(self, workers: int) -> None:
        """New work goes to a pool of the new size; chunks already running finish on the old one."""
        with self._lock:
            if workers == self.workers:
                return
            self.workers = workers
            if self._executor is not None:
                old, self._executor = self._executor, None
                old.shutdown(wait=False, cancel_futures=False)
                self._retired.append(old)
                self._ensure()

    def set_initializer(self, initializer: Callable[[], None] | None) -> None:
        with self._lock:
            self._initializer = initializer

    def rebuild(self, generation: int, kill: bool) -> bool:
        """Replace a broken or hung pool once per generation; True when this call rebuilt it."""
        with self._lock:
            if generation != self.generation or self._executor is None:
                return False
            old, self._executor = self._executor, None
            self.rebuilds += 1
            if kill:
                _terminate(old)
            old.shutdown(wait=False, cancel_futures=True)
            self._ensure()
            return True

    def pids(self) -> list[int]:
        with self._lock:
            processes = getattr(self._executor, "_processes", None) or {}
            return list(processes)

    def shutdown(self, wait: bool, kill: bool) -> None:
        with self._lock:
            executors = self._retired + ([self._executor] if self._executor else [])
            self._executor, self._retired = None, []
        for executor in executors:
            if kill:
                _terminate(executor)
            executor.shutdown(wait=wait and not kill, cancel_futures=kill)


def _terminate(executor: ProcessPoolExecutor) -> None:
    processes = getattr(executor, "_processes", None) or {}
    for process in list(processes.values()):
        try:
            process.kill()
        except Exception:  # noqa: BLE001 - already gone
            pass
