"""A job: one batch mapped over a pool, with progress a page can poll without blocking."""
from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from utils.item_errors import ItemError

_MISSING = object()


@dataclass(frozen=True)
class JobProgress:
    job_id: str
    name: str
    owner: str | None
    pool: str
    status: str  # queued, probing, running, completed, cancelled, failed
    total: int | None
    done: int  # finished items, failed ones included
    failed: int
    rate: float  # items per second since the job started
    elapsed: float
    eta: float | None
    backend: str
    backend_reason: str
    chunk_size: int | None

    @property
    def fraction(self) -> float:
        return (self.done / self.total) if self.total else (1.0 if self.status == "completed" else 0.0)

    def to_dict(self) -> dict:
        # Every field is a plain value: a shallow copy equals asdict() at a fraction of its cost
        # (metrics() builds one per listed job on every dashboard refresh).
        return dict(self.__dict__, fraction=self.fraction)


class Job:
    """State of one mapped batch. The manager mutates it under its own lock; readers get snapshots."""

    def __init__(self, fn: Callable, items: Iterable[Any], *, name: str, owner: str | None, pool: str,
                 kind: str, chunk_size: int | None, max_workers: int | None, retries: int,
                 timeout: float | None, on_progress: Callable[[int, int | None], None] | None,
                 on_chunk: Callable[["Job", list[tuple[int, Any, int, float]]], None] | None,
                 job_id: str | None = None) -> None:
        self.id = job_id or uuid.uuid4().hex[:12]
        self.fn = fn
        self.name = name
        self.owner = owner
        self.pool = pool
        self.kind = kind
        self.explicit_chunk_size = chunk_size
        self.max_workers = max_workers
        self.retries = retries
        self.timeout = timeout
        self.on_progress = on_progress
        self.on_chunk = on_chunk
        self.total: int | None = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
        self._source: Iterator[tuple[int, Any]] = enumerate(items)
        self._source_done = False
        self.requeued: deque[list[tuple[int, Any]]] = deque()
        # Single items that were running when a worker process died beside another item: each is
        # re-run alone (isolated) so that only the item that kills its worker is blamed.
        self.suspects: deque[list[tuple[int, Any]]] = deque()
        self.results: list[Any] = [_MISSING] * self.total if self.total is not None else []
        self.seen = 0  # items taken from the source
        self.done = 0
        self.failed = 0
        self.in_flight = 0
        self.backend = "thread" if kind in ("auto", "thread") else kind
        self.backend_reason = "probing" if kind == "auto" else f"asked for {kind}"
        self.phase = "probe" if kind in ("auto", "thread") else "run"
        self.probe_cpu = 0.0
        self.probe_span: list[float] = []
        self.per_item_s: float | None = None
        self.chunk_size: int | None = chunk_size
        self.created = time.monotonic()
        self.started: float | None = None
        self.finished: float | None = None
        self.status = "queued"
        self.cancel_event = threading.Event()
        self._done_event = threading.Event()
        self.exception_for_future: BaseException | None = None

    # --- items -------------------------------------------------------------------------------
    def take(self, size: int) -> list[tuple[int, Any]]:
        """The next chunk: requeued items first, then fresh ones from the source."""
        if self.requeued:
            chunk = self.requeued.popleft()
            if len(chunk) > size:
                self.requeued.appendleft(chunk[size:])
                chunk = chunk[:size]
            return chunk
        if self._source_done:
            return []
        chunk = list(itertools.islice(self._source, size))
        if len(chunk) < size:
            self._source_done = True
        self.seen += len(chunk)
        if self.total is None:
            self.results.extend([_MISSING] * len(chunk))
        return chunk

    def has_ready(self) -> bool:
        """Items `take` can hand out (suspects wait for an isolated run instead)."""
        if self.requeued:
            return True
        if self._source_done:
            return False
        if self.total is not None:
            return self.seen < self.total
        return True

    def has_waiting(self) -> bool:
        return bool(self.suspects) or self.has_ready()

    def waiting_count(self) -> int:
        requeued = sum(len(c) for c in self.requeued) + sum(len(c) for c in self.suspects)
        if self.total is not None:
            return requeued + self.total - self.seen
        return requeued

    def drain_waiting(self) -> list[tuple[int, Any]]:
        """Everything not yet handed to a worker (used when cancelling)."""
        waiting = [pair for chunk in self.suspects for pair in chunk]
        waiting += [pair for chunk in self.requeued for pair in chunk]
        self.suspects.clear()
        self.requeued.clear()
        if not self._source_done:
            rest = list(self._source)
            self.seen += len(rest)
            if self.total is None:
                self.results.extend([_MISSING] * len(rest))
            waiting.extend(rest)
            self._source_done = True
        return waiting

    def store(self, index: int, value: Any, failed: bool) -> None:
        if self.results[index] is _MISSING:
            self.done += 1
            if failed:
                self.failed += 1
        self.results[index] = value

    def store_ok(self, pairs: list[tuple[int, Any]], values: list[Any]) -> None:
        """Store a chunk's successful results at once (the fast path of `store`)."""
        results = self.results
        fresh = 0
        for (index, _), value in zip(pairs, values):
            if results[index] is _MISSING:
                fresh += 1
            results[index] = value
        self.done += fresh

    def is_finished_locked(self) -> bool:
        return self.in_flight == 0 and not self.has_waiting() and (self._source_done or self.total is not None)

    def mark_finished(self, status: str) -> None:
        self.status = status
        self.finished = time.monotonic()
        if self.total is None:
            self.total = self.seen
        self._done_event.set()

    # --- reading -----------------------------------------------------------------------------
    def progress(self) -> JobProgress:
        cached = self.__dict__.get("_final_progress")
        key = (self.finished, self.done, self.failed, self.status)
        if cached is not None and cached[0] == key:
            return cached[1]  # a finished job's progress no longer changes: dashboards re-read it cheaply
        now = self.finished or time.monotonic()
        elapsed = now - (self.started or self.created)
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = None
        if self.total is not None and rate > 0 and self.finished is None:
            eta = (self.total - self.done) / rate
        progress = JobProgress(self.id, self.name, self.owner, self.pool, self.status, self.total, self.done,
                               self.failed, rate, elapsed, eta, self.backend, self.backend_reason, self.chunk_size)
        if self.finished is not None:
            self._final_progress = (key, progress)
        return progress

    def cancel(self) -> None:
        """Stop handing out items; items not run are marked cancelled, never dropped."""
        self.cancel_event.set()
        manager = getattr(self, "_manager", None)
        if manager is not None:
            manager._wake_dispatcher()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done_event.wait(timeout)

    @property
    def finished_flag(self) -> bool:
        return self._done_event.is_set()

    def result(self, timeout: float | None = None) -> list[Any]:
        """Results in input order; failed or cancelled items hold an ItemError."""
        if not self._done_event.wait(timeout):
            raise TimeoutError(f"job {self.name} ({self.id}) still running after {timeout}s")
        return [r if r is not _MISSING else ItemError(i, "Cancelled", "not run", 0) for i, r in enumerate(self.results)]
