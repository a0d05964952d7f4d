"""A job: one batch mapped over a pool, with progress a page can poll without blocking.

Every field a job has is declared here; the manager changes them under its lock
(`ThreadingManager._lock`), readers take `progress()` snapshots. A job is finished when
every item is stored or failed with a reason: `finished_flag`, set once by `mark_finished`.
"""
from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import InitVar, dataclass, field
from typing import Any, Literal

from utils.item_errors import ItemError

_MISSING: Any = object()
_DELIVERED: Any = object()  # a successful result handed to on_chunk and not kept (Job.keep_results=False)
SYSTEM_OWNER = "system"  # owner of work started without one (scripts, the app itself): shares like a user

Requested = Literal["auto", "thread", "process", "sequential"]  # what the caller asked for
Backend = Literal["thread", "process", "dask", "sequential"]  # where the job's chunks actually run
Phase = Literal["probe", "run"]  # probe: first chunks timed to choose a backend; run: sized chunks
Status = Literal["queued", "probing", "running", "completed", "cancelled"]
# (index, value or ItemError, attempts, seconds) for each item of a finished chunk
Delivered = list[tuple[int, Any, int, float]]


@dataclass(frozen=True)
class JobProgress:
    job_id: str
    name: str
    owner: str
    pool: str
    status: Status
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


@dataclass
class Probe:
    """Measurements of the first chunks, from which the backend is chosen."""

    cpu_s: float = 0.0  # CPU seconds the probe chunks used
    spans: list[tuple[float, float]] = field(default_factory=list)  # when each probe chunk ran (monotonic)
    items: int = 0
    sent: int = 0  # probe chunks handed out this round
    target: int = 1  # probe chunks this round (one per free slot)
    time_s: float = 0.0  # wall seconds of the finished rounds
    rounds: int = 0
    gil_sampler: Any = None  # a GilSampler while an automatic choice is being made


@dataclass(eq=False)
class Job:
    """State of one mapped batch. The manager mutates it under its own lock; readers get snapshots."""

    fn: Callable[[Any], Any]
    items: InitVar[Iterable[Any]]
    name: str
    owner: str | None = SYSTEM_OWNER
    pool: str = "default"
    requested: Requested = "auto"  # what the caller asked for (the job's backend says where it runs)
    chunk_size: int | None = None  # the last chunk size used; the caller's until then
    max_workers: int | None = None
    retries: int = 0
    timeout: float | None = None
    on_progress: Callable[[int, int | None], None] | None = None
    on_chunk: Callable[[Job, Delivered], None] | None = None
    job_id: InitVar[str | None] = None
    on_done: Callable[[list[Any]], None] | None = None  # called once with the results when it finishes
    # False: each successful result goes to on_chunk only (the durable queue stores it) and is not kept here, so a
    # finished job in the manager's recent list does not hold a 100,000-item batch's results alive.
    keep_results: bool = True
    wake: Callable[[], None] | None = None  # wakes the dispatcher (set by the manager)

    id: str = field(init=False)
    explicit_chunk_size: int | None = field(init=False)
    total: int | None = field(init=False)
    results: list[Any] = field(init=False)
    requeued: deque[list[tuple[int, Any]]] = field(init=False, default_factory=deque)
    # Single items that were running when a worker process died beside another item: each is
    # re-run alone (isolated) so that only the item that kills its worker is blamed.
    suspects: deque[list[tuple[int, Any]]] = field(init=False, default_factory=deque)
    tracebacks: dict[int, str] = field(init=False, default_factory=dict)  # failed item -> its traceback text
    failed_inputs: dict[int, Any] = field(init=False, default_factory=dict)  # failed item -> its input (for a retry)
    slowest: list[tuple[float, int]] = field(init=False, default_factory=list)  # (seconds, index), slowest first
    breaks: dict[int, int] = field(init=False, default_factory=dict)  # worker deaths seen per item
    alone_breaks: dict[int, int] = field(init=False, default_factory=dict)  # ...while it ran alone
    seen: int = field(init=False, default=0)  # items taken from the source
    done: int = field(init=False, default=0)
    failed: int = field(init=False, default=0)
    in_flight: int = field(init=False, default=0)  # chunks handed out and not finished
    backend: Backend = field(init=False)
    backend_reason: str = field(init=False)
    phase: Phase = field(init=False)
    probe: Probe = field(init=False, default_factory=Probe)
    per_item_s: float | None = field(init=False, default=None)
    created: float = field(init=False, default_factory=time.monotonic)
    started: float | None = field(init=False, default=None)
    finished: float | None = field(init=False, default=None)
    status: Status = field(init=False, default="queued")
    finishing: bool = field(init=False, default=False)  # one thread is running the finish callbacks
    cancel_event: threading.Event = field(init=False, default_factory=threading.Event)
    exception_for_future: BaseException | None = field(init=False, default=None)
    _done_event: threading.Event = field(init=False, default_factory=threading.Event)
    _source: Iterator[tuple[int, Any]] = field(init=False)
    _source_done: bool = field(init=False, default=False)
    _final_progress: tuple[tuple, JobProgress] | None = field(init=False, default=None)

    def __post_init__(self, items: Iterable[Any], job_id: str | None) -> None:
        self.id = job_id or uuid.uuid4().hex[:12]
        self.owner = self.owner or SYSTEM_OWNER
        self.explicit_chunk_size = self.chunk_size
        self.total = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
        self._source = enumerate(items)
        self.results = [_MISSING] * self.total if self.total is not None else []
        self.backend = "thread" if self.requested in ("auto", "thread") else self.requested  # type: ignore[assignment]
        self.backend_reason = "probing" if self.requested == "auto" else f"asked for {self.requested}"
        self.phase = "probe" if self.requested in ("auto", "thread") else "run"

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
        if len(chunk) < size or (self.total is not None and self.seen + len(chunk) >= self.total):
            self._source_done = True
            self._source = iter(())  # let go of the caller's items: a finished job is kept for a while
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
        self.results[index] = value if failed or self.keep_results else _DELIVERED

    def store_ok(self, pairs: list[tuple[int, Any]], values: list[Any]) -> None:
        """Store a chunk's successful results at once (the fast path of `store`)."""
        results = self.results
        keep = self.keep_results
        fresh = 0
        for (index, _), value in zip(pairs, values):
            if results[index] is _MISSING:
                fresh += 1
            results[index] = value if keep else _DELIVERED
        self.done += fresh

    def is_finished_locked(self) -> bool:
        """Every item stored or failed: nothing running, nothing waiting, the source read to its end."""
        return self.in_flight == 0 and not self.has_waiting() and (self._source_done or self.total is not None)

    def mark_finished(self, status: Literal["completed", "cancelled"]) -> None:
        self.status = status
        self.finished = time.monotonic()
        if self.total is None:
            self.total = self.seen
        self._done_event.set()

    # --- reading -----------------------------------------------------------------------------
    def progress(self) -> JobProgress:
        cached = self._final_progress
        key = (self.finished, self.done, self.failed, self.status)
        if cached is not None and cached[0] == key:
            return cached[1]  # a finished job's progress no longer changes: dashboards re-read it cheaply
        now = self.finished or time.monotonic()
        elapsed = now - (self.started or self.created)
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = None
        if self.total is not None and rate > 0 and self.finished is None:
            eta = (self.total - self.done) / rate
        progress = JobProgress(self.id, self.name, self.owner or SYSTEM_OWNER, self.pool, self.status, self.total,
                               self.done, self.failed, rate, elapsed, eta, self.backend, self.backend_reason,
                               self.chunk_size)
        if self.finished is not None:
            self._final_progress = (key, progress)
        return progress

    def cancel(self) -> None:
        """Stop handing out items; items not run are marked cancelled, never dropped."""
        self.cancel_event.set()
        if self.wake is not None:
            self.wake()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done_event.wait(timeout)

    @property
    def finished_flag(self) -> bool:
        """The one notion of finished: every item is stored or failed with a reason."""
        return self._done_event.is_set()

    def result(self, timeout: float | None = None) -> list[Any]:
        """Results in input order; failed or cancelled items hold an ItemError. With keep_results=False, a
        successful item holds None (its result went to on_chunk)."""
        if not self._done_event.wait(timeout):
            raise TimeoutError(f"job {self.name} ({self.id}) still running after {timeout}s")
        return [None if r is _DELIVERED else r if r is not _MISSING else ItemError(i, "Cancelled", "not run", 0)
                for i, r in enumerate(self.results)]
