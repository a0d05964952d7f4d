"""The one shared threading manager every page runs its work through.

How a batch flows::

    page / script                     dispatcher thread                     backend
    ─────────────                     ─────────────────                     ───────
    map(fn, items) ──► Job (queued) ──► pick a job by fair share ──► chunk ──► threads  (WorkerThreads)
    parallel_map                        size the chunk (utils.sizing)    ├──► processes (ProcessWorkers)
    submit_task                         probe → choose a backend         └──► Dask     (DaskWorkers)
                                                                                   │
    job.progress() ◄── Job.results ◄── _complete: store each outcome ◄── outcomes ◄┘
                        │                 (ItemError for a failure, with its reason)
                        └──► on_chunk (the durable queue saves rows to the store) ──► on_done

Pools are named (default, upload, database, analytics, cpu, untrusted, and any `add_pool`).
A thread pool's concurrency adapts to the work (utils.concurrency); process pools are fixed.
Fair share is work-conserving: a user alone may use every slot; while others wait each
gets at least an equal share, and MAX_WORKERS_PER_USER caps a user only then. Pages never
block on the manager: they keep a Job and poll `job.progress()`.
"""
from __future__ import annotations

import atexit
import functools
import logging
import pickle
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import CancelledError, Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Literal

from config.threading_config import BackendName, ThreadingConfig, load_threading_config
from utils import sizing
from utils.backends import ChunkBackend
from utils.chunk_runner import ChunkWatch, GilSampler, run_chunk_in_process, run_chunk_in_thread, runqueue_wait
from utils.concurrency import ConcurrencyController
from utils.item_errors import ItemError
from utils.jobs import SYSTEM_OWNER, Delivered, Job, JobProgress
from utils.metrics import PoolMetrics
from utils.process_workers import ProcessWorkers, address_space_limit_mb, limit_memory
from utils.system_stats import SystemSampler
from utils.worker_threads import WorkerThreads

log = logging.getLogger(__name__)

PROBE_BUDGET_S = 0.02  # a probe chunk runs this long before the backend is chosen
PROCESS_START_SLACK_S = 2.0
PROCESS_START_LIMIT_S = 60.0  # workers not started by then count as started (so a timeout still applies)
RETRY_BACKOFF_S = 0.05
HISTORY_SAMPLE_S = 1.0
SLOWEST_KEPT = 10  # slowest items remembered per job
BACKEND_WORDS = sizing.BACKEND_WORDS
REQUESTS = ("auto", "thread", "process", "sequential")
Requested = Literal["auto", "thread", "process", "sequential"]
_UNSET: Any = object()
_GIL_SAMPLING = runqueue_wait() is not None  # Linux schedstat: the GIL sampler can tell waiting from computing


@dataclass(eq=False)
class Pool:
    """One named pool: its settings, its backend, and what is running on it now."""

    name: str
    backend: BackendName
    workers: int  # configured size: threads start here, processes stay here
    timeout: float | None
    concurrency: ConcurrencyController
    chunk_size: int | None = None
    parallel: bool = True
    memory_limit_mb: int | None = None  # per item, on process workers (RLIMIT_AS adds the interpreter's share)
    initializer: Callable[[], None] | None = None  # run once in each worker thread or process
    threads: WorkerThreads | None = None
    processes: ChunkBackend | None = None  # ProcessWorkers, or a DaskWorkers set with set_backend
    in_flight: int = 0
    isolated: int = 0  # suspect items running alone after a worker death (nothing else is dispatched)
    held_for_memory: bool = False
    gil_sampler: GilSampler | None = None  # samples the GIL while the concurrency controller warms up
    metrics: PoolMetrics = field(default_factory=PoolMetrics)

    @property
    def kind(self) -> BackendName:
        """Old name of `backend`."""
        return self.backend

    @property
    def backend_label(self) -> str:
        return self.backend if self.parallel else "sequential"


@dataclass(eq=False)
class InFlight:
    """A chunk handed to a backend and not yet accounted for."""

    job: Job
    pool: Pool
    chunk: list[tuple[int, Any]]
    started: float
    probe: bool = False
    watch: ChunkWatch | None = None
    generation: int = 0
    timed_out: bool = False
    innocent: bool = False  # its process pool broke because of another chunk
    isolated: bool = False


def _invoke(call: Callable[[], Any], _item: Any) -> Any:
    return call()


def _picklable(fn: Callable) -> bool:
    try:
        pickle.dumps(fn)
        return True
    except Exception:  # noqa: BLE001 - any failure means it cannot go to a process
        return False


class ThreadingManager:
    def __init__(self, config: ThreadingConfig | None = None) -> None:
        self.config = config or load_threading_config()
        # Guards every pool's and job's counters, _jobs, _recent, _in_flight, the owner books and
        # the concurrency controllers. A condition: the dispatcher sleeps on it until work changes.
        self._lock = threading.Condition(threading.RLock())
        self._pools: dict[str, Pool] = {}
        for pc in self.config.pools.values():
            self._pools[pc.name] = self._new_pool(pc.name, pc.backend, pc.workers, pc.timeout, pc.chunk_size,
                                                  pc.memory_limit_mb, None)
        self._jobs: dict[str, Job] = {}
        self._recent: deque[Job] = deque(maxlen=50)
        self._in_flight: set[InFlight] = set()
        self._total_in_flight = 0
        self._owner_in_flight: dict[str, int] = defaultdict(int)
        self._owner_last: dict[str, float] = {}
        self._away: set[str] = set()
        self._tabs: dict[str, int] = {}
        self._history: deque[dict] = deque(maxlen=600)
        self._rate_limiters: dict[str, Any] = {}
        self._sampler = SystemSampler()
        self._stopping = False
        self._memory_held = False
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name="spindle-dispatcher", daemon=True)
        self._dispatcher.start()
        atexit.register(self.shutdown, wait=False, cancel_futures=True)

    def _new_pool(self, name: str, backend: BackendName, workers: int, timeout: float | None,
                  chunk_size: int | None, memory_limit_mb: int | None,
                  initializer: Callable[[], None] | None) -> Pool:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        controller = ConcurrencyController(base=workers, ceiling=self.config.max_total_workers,
                                           cores=self.config.cpu_count)
        if backend != "thread":
            controller.reason = "processes: fixed at the pool's size"
        return Pool(name, backend, workers, timeout, controller, chunk_size=chunk_size,
                    memory_limit_mb=memory_limit_mb, initializer=initializer,
                    metrics=PoolMetrics(timings=self.config.enable_task_monitoring))

    # ------------------------------------------------------------------ public API
    def pool_names(self) -> list[str]:
        return list(self._pools)

    def add_pool(self, name: str, *, backend: BackendName = "thread", workers: int, timeout: float | None = None,
                 chunk_size: int | None = None, initializer: Callable[[], None] | None = None,
                 memory_limit_mb: int | None = None) -> None:
        """A new named pool, e.g. one whose workers each open a connection in `initializer`."""
        if backend not in ("thread", "process"):
            raise ValueError(f"backend must be thread or process, not {backend!r}")
        pool = self._new_pool(name, backend, workers, timeout, chunk_size, memory_limit_mb, initializer)
        with self._lock:
            if name in self._pools:
                raise ValueError(f"a pool named {name!r} exists already")
            self._pools[name] = pool

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], *, max_workers: int | None = None,
            chunk_size: int | None = None, backend: str = "auto", pool: str | None = None,
            timeout: float | None = None, retries: int = 0, owner: str | None = None, name: str | None = None,
            on_progress: Callable[[int, int | None], None] | None = None,
            on_chunk: Callable[[Job, Delivered], None] | None = None,
            on_done: Callable[[list[Any]], None] | None = None, job_id: str | None = None,
            kind: str | None = None, keep_results: bool = True) -> Job:
        """Start mapping `fn` over `items` and return at once; the Job reports progress and results.

        backend: "auto" (probe, then threads or processes), "thread", "process" or "sequential";
        `kind` is its old name. max_workers: chunks of this job at once, honoured up to
        MAX_TOTAL_WORKERS on threads (a process pool runs at most its own worker count).
        owner: whose share it counts against (default "system").
        on_done: called once with the results when every item is stored or failed.
        keep_results=False: a caller that takes each chunk's results from on_chunk (and stores them) does not get
        them again from the job, which then holds no successful result (see Job.keep_results).
        """
        requested = kind if kind is not None else backend
        if requested not in REQUESTS:
            raise ValueError(f"backend must be auto, thread, process or sequential, not {requested!r}")
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}")
        pool_name = pool or ("cpu" if requested == "process" else "default")
        target = self._get_pool(pool_name)
        reason = ""
        if target.backend != "thread" and requested in ("auto", "thread", "sequential"):
            requested = "process"
            reason = f"pool {pool_name!r} runs on {BACKEND_WORDS.get(target.backend, target.backend)}"
        if requested == "process" and target.backend == "thread":
            pool_name, target = "cpu", self._get_pool("cpu")
        if requested == "process" and not _picklable(fn):
            if target.memory_limit_mb is not None:
                raise ValueError(f"pool {pool_name!r} runs untrusted work only in worker processes, and "
                                 f"{getattr(fn, '__name__', fn)!r} cannot be sent to one (a lambda or closure)")
            requested, reason = "thread", "the function cannot be sent to a process (lambda or closure): ran on threads"
            pool_name = pool if pool and self._pools[pool].backend == "thread" else "default"
        job = Job(fn, items, name=name or str(getattr(fn, "__name__", "job")), owner=owner or SYSTEM_OWNER,
                  pool=pool_name, requested=requested, chunk_size=chunk_size,  # type: ignore[arg-type]
                  max_workers=1 if requested == "sequential" else max_workers, retries=retries,
                  timeout=timeout if timeout is not None else self._pools[pool_name].timeout,
                  on_progress=on_progress, on_chunk=on_chunk, on_done=on_done, job_id=job_id,
                  keep_results=keep_results, wake=self._wake_dispatcher)
        if reason:
            job.backend_reason = reason
        if requested == "thread" and (chunk_size or self._pools[pool_name].chunk_size):
            job.phase = "run"
        finished: list[Any] | None = None
        with self._lock:
            if self._stopping:
                raise RuntimeError("the threading manager is shut down")
            self._jobs[job.id] = job
            if job.total == 0:
                job.mark_finished("completed")
                self._retire_job_locked(job)
                finished = []
            self._lock.notify()
        if finished is not None and on_done is not None:
            on_done(finished)
        return job

    def parallel_map(self, fn: Callable[[Any], Any], items: Iterable[Any], max_workers: int | None = None,
                     chunk_size: int | None = None, backend: str = "auto", pool: str | None = None,
                     timeout: float | None = None, retries: int = 0,
                     on_progress: Callable[[int, int | None], None] | None = None, owner: str | None = None,
                     kind: str | None = None) -> list:
        """Blocking map: results in input order, a failed item's slot holds an ItemError."""
        job = self.map(fn, items, max_workers=max_workers, chunk_size=chunk_size, backend=backend, pool=pool,
                       timeout=timeout, retries=retries, on_progress=on_progress, owner=owner, kind=kind)
        return job.result()

    def batch_process_files(self, fn: Callable[[Any], Any], files: Sequence[Any], batch_size: int | None = None,
                            on_progress: Callable[[int, int | None], None] | None = None,
                            owner: str | None = None) -> list:
        """Process files on the upload pool, `batch_size` files per chunk."""
        return self.parallel_map(fn, files, chunk_size=batch_size or self.config.batch_size, backend="thread",
                                 pool="upload", on_progress=on_progress, owner=owner)

    def submit_task(self, fn: Callable, *args: Any, task_name: str | None = None, pool: str = "default",
                    owner: str | None = None, **kwargs: Any) -> Future:
        """Run one call on a pool; the Future carries its result or its exception."""
        future: Future = Future()
        call = functools.partial(fn, *args, **kwargs)
        backend = "thread" if self._get_pool(pool).backend == "thread" else "process"
        holder: list[Job] = []

        def finish(results: list) -> None:
            value = results[0]
            if isinstance(value, ItemError):
                job = holder[0] if holder else None
                future.set_exception((job.exception_for_future if job else None) or RuntimeError(value.message))
            else:
                future.set_result(value)

        future.set_running_or_notify_cancel()  # before the task can finish: set_result needs RUNNING/PENDING
        with self._lock:  # the job cannot finish before `holder` names it: finishing takes this lock
            job = self.map(functools.partial(_invoke, call), [None], chunk_size=1, backend=backend, pool=pool,
                           name=task_name or getattr(fn, "__name__", "task"), owner=owner, on_done=finish)
            holder.append(job)
        return future

    def job(self, job_id: str) -> Job | None:
        with self._lock:
            found = self._jobs.get(job_id)
            if found is None:
                found = next((j for j in self._recent if j.id == job_id), None)
            return found

    def jobs(self, owner: str | None = None, include_finished: bool = True) -> list[JobProgress]:
        with self._lock:
            jobs = list(self._jobs.values()) + (list(self._recent) if include_finished else [])
        return [j.progress() for j in jobs if owner is None or j.owner == owner]

    def configure(self, pool: str = "default", *, workers: int | None = None, chunk_size: int | None = _UNSET,
                  parallel: bool | None = None, initializer: Callable[[], None] | None = _UNSET) -> None:
        """Retune a live pool; queued and running work is kept.

        workers: the pool's base size (a thread pool still adapts from there); initializer: run once
        in each worker started from now on (threads: may set thread-local resources).
        """
        target = self._get_pool(pool)
        with self._lock:
            if workers is not None:
                if workers < 1:
                    raise ValueError(f"workers must be at least 1, not {workers}")
                target.workers = workers
                target.concurrency.set_base(workers)
                if self.config.debug_threading:
                    log.info("pool %s: concurrency %d (%s)", pool, workers, target.concurrency.reason)
                if target.threads is not None:
                    target.threads.resize(max(workers, target.in_flight))
                if target.processes is not None:
                    target.processes.resize(workers)
            if chunk_size is not _UNSET:
                if chunk_size is not None and chunk_size < 1:
                    raise ValueError(f"chunk_size must be at least 1 or None, not {chunk_size}")
                target.chunk_size = chunk_size
            if parallel is not None:
                target.parallel = parallel
            if initializer is not _UNSET:
                target.initializer = initializer
                if target.threads is not None:
                    target.threads.set_initializer(initializer)
                if target.processes is not None:
                    target.processes.set_initializer(self._process_initializer(target))
            self._lock.notify()

    def pool_settings(self, pool: str) -> dict:
        target = self._get_pool(pool)
        return {"name": target.name, "backend": target.backend, "kind": target.backend, "workers": target.workers,
                "concurrency": self._pool_cap_locked(target), "chunk_size": target.chunk_size,
                "parallel": target.parallel, "timeout": target.timeout, "memory_limit_mb": target.memory_limit_mb,
                "initializer": target.initializer}

    def pool_backend(self, pool: str) -> ChunkBackend | None:
        """The chunk backend a process (or Dask) pool runs on now; None before its first chunk or for threads."""
        target = self._get_pool(pool)
        with self._lock:
            return target.processes

    def set_backend(self, pool: str, backend: ChunkBackend | None, *, name: BackendName, workers: int | None = None,
                    expect: ChunkBackend | None | object = _UNSET) -> ChunkBackend | None:
        """Run a process pool's chunks on `backend` (None: local processes again); the old backend is returned.

        name: "process" or "dask", shown as the pool's backend; workers: chunks in flight from now on.
        expect: only swap when the current backend is this one (None is returned otherwise, nothing changes).
        The caller shuts the old backend down; chunks already sent finish there.
        """
        target = self._get_pool(pool)
        with self._lock:
            if target.backend == "thread" and name == "thread":
                raise ValueError(f"pool {pool!r} runs threads; only process pools take another backend")
            old = target.processes
            if expect is not _UNSET and old is not expect:
                return None
            target.backend, target.processes = name, backend
            if workers is not None:
                target.workers = workers
                target.concurrency.set_base(workers)
            self._lock.notify()
        return old

    def warm(self, pool: str = "cpu") -> None:
        """Start a process pool's workers ahead of the first batch."""
        target = self._get_pool(pool)
        with self._lock:
            backend = self._process_backend(target)
        backend.warm()

    def rate_limiter(self, name: str, rate_per_s: float, burst: int = 1) -> Any:
        """One shared, thread-safe limiter per name (e.g. the geocoding API's quota)."""
        from utils.rate_limiter import RateLimiter

        with self._lock:
            limiter = self._rate_limiters.get(name)
            if limiter is None or limiter.rate_per_s != rate_per_s:
                limiter = self._rate_limiters[name] = RateLimiter(rate_per_s, burst=burst)
            return limiter

    def set_owner_present(self, owner: str, present: bool) -> None:
        """Called when a user's tab opens or closes: their jobs go on either way, their share changes.

        Counts tabs, so closing one of two tabs keeps the user present. A user with no open tab
        keeps one worker while someone present waits (the people who are here go first).
        """
        with self._lock:
            tabs = self._tabs.get(owner, 0) + (1 if present else -1)
            self._tabs[owner] = max(0, tabs)
            if tabs > 0:
                self._away.discard(owner)
            else:
                self._away.add(owner)
            self._lock.notify()

    def user_stats(self) -> list[dict]:
        """Per-user running chunks, waiting items and limit (the fair-share table)."""
        with self._lock:
            waiting = self._waiting_owners_locked()
            rows: dict[str, dict] = {}
            for job in self._jobs.values():
                owner = job.owner or SYSTEM_OWNER
                row = rows.setdefault(owner, {"user": owner, "jobs": 0, "running": 0, "queued_items": 0,
                                              "limit": self._owner_cap_locked(owner, waiting),
                                              "present": owner not in self._away})
                row["jobs"] += 1
                row["running"] += job.in_flight
                row["queued_items"] += job.waiting_count()
            return sorted(rows.values(), key=lambda r: r["user"])

    def metrics(self) -> dict:
        """A cheap snapshot for dashboards: pools, jobs, system, a short history."""
        with self._lock:
            queued: dict[str, int] = defaultdict(int)
            for job in self._jobs.values():
                queued[job.pool] += job.waiting_count()
            pools = {}
            for pool in self._pools.values():
                snap = pool.metrics.snapshot()
                cap = self._pool_cap_locked(pool)
                snap.update(kind=pool.backend, backend=pool.backend_label, workers=pool.workers,
                            concurrency=cap, concurrency_reason=pool.concurrency.reason,
                            chunk_size=pool.chunk_size, parallel=pool.parallel, busy=pool.in_flight,
                            queued=queued[pool.name], held_for_memory=pool.held_for_memory,
                            efficiency=min(1.0, pool.in_flight / cap))
                pools[pool.name] = snap
            jobs = [j.progress().to_dict() for j in self._jobs.values()]
            recent = [j.progress().to_dict() for j in list(self._recent)[-10:]]
            history = list(self._history)
            memory_held = self._memory_held
        return {"pools": pools, "jobs": jobs, "recent_jobs": recent, "system": self._sampler.snapshot().to_dict(),
                "history": history, "memory_held": memory_held}

    def job_history(self, owner: str | None = None) -> list[dict]:
        """Finished jobs, newest first: progress, failures counted, and the slowest items (index, seconds)."""
        with self._lock:
            jobs = [j for j in reversed(self._recent) if owner is None or j.owner == owner]
            rows = []
            for job in jobs:
                row = job.progress().to_dict()
                row.update(slowest=[{"index": index, "seconds": seconds} for seconds, index in job.slowest],
                           retryable=len(job.failed_inputs))
                rows.append(row)
        return rows

    def job_failures(self, job_id: str) -> list[dict]:
        """Each failed item of a job: index, error type, message, attempts and traceback text (may be empty)."""
        job = self.job(job_id)
        if job is None:
            return []
        with self._lock:
            failed = [(i, r) for i, r in enumerate(job.results) if isinstance(r, ItemError)
                      and r.error_type != "Cancelled"]
            return [{"index": i, "error_type": r.error_type, "message": r.message, "attempts": r.attempts,
                     "traceback": job.tracebacks.get(i, "")} for i, r in failed]

    def retry_failed(self, job_id: str, owner: str | None = None) -> Job | None:
        """Map the job's function again over its failed items only (a new job); None when nothing failed.

        The new job's results are in the order of the failed items' indexes (see `job_failures`).
        """
        job = self.job(job_id)
        if job is None:
            return None
        with self._lock:
            if not job.finished_flag:
                raise ValueError(f"job {job_id} is still running; retry its failures once it finished")
            inputs = [job.failed_inputs[i] for i in sorted(job.failed_inputs)]
        if not inputs:
            return None
        return self.map(job.fn, inputs, backend=job.requested, pool=job.pool if job.requested != "auto" else None,
                        max_workers=job.max_workers, timeout=job.timeout, retries=job.retries,
                        owner=owner or job.owner, name=f"{job.name} (retry)")

    def tune_job(self, job_id: str, max_workers: int | None = None, chunk_size: int | None = None) -> bool:
        """Change a running job's workers and chunk size (None keeps a setting); False if it is not running here.

        Takes effect from the job's next chunk; the pool and every other job keep theirs.
        """
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return False
            if max_workers is not None and job.requested != "sequential":
                job.max_workers = max_workers
            if chunk_size is not None:
                job.explicit_chunk_size = chunk_size
            self._lock.notify()  # the dispatcher may hand out more chunks now
        return True

    def worker_stats(self, pool: str) -> list[dict]:
        """Busy and idle seconds of each worker thread of a thread pool (empty for process pools)."""
        target = self._get_pool(pool)
        return target.threads.worker_times() if target.threads is not None else []

    def chunks_in_flight(self) -> list[tuple[str, int]]:
        """(pool, items) of every chunk handed out and not finished: what the dispatcher holds right now."""
        with self._lock:
            return [(record.pool.name, len(record.chunk)) for record in self._in_flight]

    def reset_metrics(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.metrics.reset()
            self._history.clear()
            self._recent.clear()

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Stop the manager. With cancel_futures it returns within about a second."""
        pending: list[Job] = []
        with self._lock:
            if self._stopping:
                return
            if cancel_futures:
                for job in list(self._jobs.values()):
                    job.cancel_event.set()
            elif wait:
                pending = list(self._jobs.values())
            self._lock.notify_all()
        for job in pending:
            job.wait()
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        deadline = time.monotonic() + 1.0
        self._dispatcher.join(max(0.0, deadline - time.monotonic()))
        kill = cancel_futures or not wait
        for pool in self._pools.values():
            if pool.processes is not None:
                pool.processes.shutdown(wait=not kill, kill=kill)
            if pool.threads is not None:
                pool.threads.shutdown(timeout=max(0.0, deadline - time.monotonic()) if kill else None)
        with self._lock:
            for job in list(self._jobs.values()):
                self._cancel_waiting_locked(job)
                if not job.finished_flag:
                    job.mark_finished("cancelled")

    # ------------------------------------------------------------------ dispatching
    def _get_pool(self, name: str) -> Pool:
        try:
            return self._pools[name]
        except KeyError:
            raise ValueError(f"no pool named {name!r}; pools are {', '.join(self._pools)}") from None

    def _wake_dispatcher(self) -> None:
        with self._lock:
            self._lock.notify()

    def _thread_backend(self, pool: Pool) -> WorkerThreads:
        if pool.threads is None:
            pool.threads = WorkerThreads(pool.name, pool.workers, pool.initializer)
        return pool.threads

    def _process_initializer(self, pool: Pool) -> Callable[[], None] | None:
        """The pool's initializer, behind an address-space cap for a memory-limited pool."""
        if pool.memory_limit_mb is None:
            return pool.initializer
        return functools.partial(limit_memory, address_space_limit_mb(pool.memory_limit_mb), pool.initializer)

    def _process_backend(self, pool: Pool) -> ChunkBackend:
        if pool.processes is None:
            pool.processes = ProcessWorkers(pool.name, pool.workers, self._process_initializer(pool))
        return pool.processes

    def _dispatch_loop(self) -> None:
        last_sample = 0.0
        while True:
            expired: list[InFlight] = []
            exhausted: list[Job] = []
            with self._lock:
                if self._stopping:
                    return
                try:
                    self._cancel_requested_locked()
                    exhausted = self._dispatch_locked()
                    expired = self._expired_locked()
                except Exception:  # noqa: BLE001 - the dispatcher must survive anything
                    log.exception("dispatcher error")
                has_timeouts = any(r.job.timeout for r in self._in_flight)
                wait = 0.05 if has_timeouts else (0.25 if self._memory_held else 1.0)
                if not expired and not exhausted:
                    self._lock.wait(wait)
            for job in exhausted:  # an iterator ran dry after its last chunk finished: finish the job
                self._after_complete(job, [])
            for record in expired:
                self._handle_timeout(record)
            now = time.monotonic()
            if now - last_sample >= HISTORY_SAMPLE_S and self.config.enable_task_monitoring:
                last_sample = now
                self._sample_history()

    def _memory_ok(self) -> bool:
        snap = self._sampler.snapshot()
        return snap.memory_available_mb >= self.config.min_free_memory_mb

    def _dispatch_locked(self) -> list[Job]:
        """Hand out chunks; returns jobs found finished (an iterator without len ran dry)."""
        memory_ok = self._memory_ok()
        self._memory_held = False
        exhausted: list[Job] = []
        waiting = self._waiting_owners_locked()
        for pool in self._pools.values():
            pool.held_for_memory = False
            if pool.isolated:
                continue  # a suspect item runs alone until it finishes or kills its worker
            suspect = self._suspect_job_locked(pool)
            if suspect is not None:
                # Let the pool drain, then run one suspect alone: if its worker dies, it is the killer.
                if pool.in_flight == 0:
                    self._dispatch_chunk_locked(pool, suspect, suspect.suspects.popleft(), isolated=True)
                continue
            cap = self._pool_cap_locked(pool)
            while pool.in_flight < cap and self._total_in_flight < self.config.max_total_workers:
                job = self._pick_job_locked(pool, waiting)
                if job is None:
                    break
                if not memory_ok and pool.in_flight > 0:
                    pool.held_for_memory = self._memory_held = True
                    break
                if self._dispatch_chunk_locked(pool, job) is None:
                    if job.is_finished_locked() and not job.finished_flag:
                        exhausted.append(job)
                    elif not job.has_ready():
                        waiting = self._waiting_owners_locked()
        return exhausted

    def _suspect_job_locked(self, pool: Pool) -> Job | None:
        for job in self._jobs.values():
            if job.pool == pool.name and job.suspects and not job.cancel_event.is_set():
                return job
        return None

    def _waiting_owners_locked(self) -> set[str]:
        """Owners with items ready to hand out (whether or not a slot is free for them)."""
        return {job.owner or SYSTEM_OWNER for job in self._jobs.values()
                if not job.cancel_event.is_set() and job.has_ready()}

    def _owner_cap_locked(self, owner: str, waiting: set[str]) -> int:
        """Chunks `owner` may run at once. Alone: every slot. While others wait: MAX_WORKERS_PER_USER,
        never less than an equal share of MAX_TOTAL_WORKERS; one, for a user with no tab open."""
        total = self.config.max_total_workers
        others = [o for o in waiting if o != owner]
        if not others:
            return total
        if owner in self._away and any(o not in self._away for o in others):
            return 1
        return max(self.config.max_workers_per_user, total // (len(others) + 1))

    def _job_cap(self, pool: Pool, job: Job) -> int:
        """Chunks of `job` at once: its max_workers (up to MAX_TOTAL_WORKERS), else the pool's concurrency."""
        if not pool.parallel:
            return 1
        if job.max_workers is not None:
            return min(job.max_workers, self.config.max_total_workers)
        return pool.concurrency.level if pool.backend == "thread" else pool.workers

    def _pool_cap_locked(self, pool: Pool) -> int:
        """Chunks the pool runs at once: its concurrency, raised for a job that asked for more workers."""
        if not pool.parallel:
            return 1
        if pool.backend != "thread":
            return pool.workers
        cap = pool.concurrency.level
        for job in self._jobs.values():
            if job.max_workers is not None and job.pool == pool.name and job.max_workers > cap:
                cap = min(job.max_workers, self.config.max_total_workers)
        return cap

    def _pick_job_locked(self, pool: Pool, waiting: set[str]) -> Job | None:
        """Fair share: the user with the fewest running chunks goes next; one user's jobs run in order."""
        best, best_key = None, None
        for job in self._jobs.values():
            if job.pool != pool.name or job.cancel_event.is_set() or not job.has_ready():
                continue
            if job.phase == "probe" and job.in_flight and job.probe.sent >= job.probe.target:
                continue
            if job.in_flight >= self._job_cap(pool, job):
                continue
            owner = job.owner or SYSTEM_OWNER
            running = self._owner_in_flight[owner]
            if running >= self._owner_cap_locked(owner, waiting):
                continue
            key = (running, self._owner_last.get(owner, 0.0), job.created)
            if best_key is None or key < best_key:
                best, best_key = job, key
        return best

    def _slots_for(self, pool: Pool, job: Job) -> int:
        owner = job.owner or SYSTEM_OWNER
        return max(1, min(self._job_cap(pool, job), self._owner_cap_locked(owner, self._waiting_owners_locked())))

    def _chunk_size_locked(self, pool: Pool, job: Job) -> int:
        backend = "thread" if job.backend not in ("process", "dask") else job.backend
        if backend == "process" and pool.backend == "dask":
            backend = "dask"
        return sizing.chunk_size(job.phase, backend, job.per_item_s,
                                 job.waiting_count() if job.total is not None else None,
                                 self._slots_for(pool, job), job.explicit_chunk_size or pool.chunk_size)

    def _dispatch_chunk_locked(self, pool: Pool, job: Job, chunk: list[tuple[int, Any]] | None = None,
                               isolated: bool = False, run_here: bool = False) -> InFlight | None:
        """Hand the job's next chunk to the pool; the record, or None when nothing was handed out.

        With run_here a thread chunk is not queued: the calling worker thread runs it.
        """
        if chunk is None:
            size = self._chunk_size_locked(pool, job)
            chunk = job.take(size)
        else:
            size = len(chunk)
        if not chunk:
            return None
        now = time.monotonic()
        probe = job.phase == "probe"
        if probe and not job.in_flight and not job.probe.sent:
            job.probe.target = min(self._slots_for(pool, job), self._pool_cap_locked(pool) - pool.in_flight) or 1
            if job.requested == "auto" and self.config.cpu_count >= 2 and job.probe.gil_sampler is None:
                job.probe.gil_sampler = GilSampler()  # stopped when the backend is chosen
        if probe:
            job.probe.sent += 1
        if job.started is None:
            job.started = now
        job.status = "probing" if probe and job.requested == "auto" else "running"
        job.chunk_size = size if not probe else job.chunk_size
        job.in_flight += 1
        pool.in_flight += 1
        self._total_in_flight += 1
        owner = job.owner or SYSTEM_OWNER
        self._owner_in_flight[owner] += 1
        self._owner_last[owner] = now
        record = InFlight(job, pool, chunk, now, probe=probe, isolated=isolated)
        if isolated:
            pool.isolated += 1
        self._in_flight.add(record)
        items = [item for _, item in chunk]
        if job.backend in ("process", "dask"):
            job.backend = "dask" if pool.backend == "dask" else "process"  # say where it really ran
            try:
                backend = self._process_backend(pool)
                future, record.generation = backend.submit(run_chunk_in_process, job.fn, items, job.retries,
                                                           RETRY_BACKOFF_S)
            except Exception as exc:  # noqa: BLE001 - a pool that cannot start falls back to threads
                self._in_flight.discard(record)
                self._release_slot_locked(record)
                if pool.memory_limit_mb is not None:  # untrusted work never runs in this process: fail it
                    log.error("pool %s cannot start worker processes: %s", pool.name, exc)
                    delivered: Delivered = []
                    for index, _ in chunk:
                        error = ItemError(index, "PoolUnavailable", f"the {pool.name!r} worker processes could not "
                                          f"start ({type(exc).__name__}); this item was not run", 0)
                        job.store(index, error, failed=True)
                        delivered.append((index, error, 0, 0.0))
                    threading.Thread(target=self._after_complete, args=(job, delivered), daemon=True).start()
                    return None
                job.requeued.appendleft(chunk)
                log.warning("process pool %s cannot run (%s); falling back to threads", pool.name, exc)
                job.backend, job.backend_reason = "thread", f"process pool could not start ({exc}); ran on threads"
                job.pool = "default" if pool.backend != "thread" else pool.name
                return None
            future.add_done_callback(functools.partial(self._on_process_done, record))
        else:
            record.watch = ChunkWatch()
            threads = self._thread_backend(pool)
            if threads.size < pool.in_flight:
                threads.resize(pool.in_flight)  # concurrency grew past the threads started so far
            if run_here:
                return record
            budget = PROBE_BUDGET_S if probe else None
            threads.submit(functools.partial(self._run_thread_chunk, record, items, budget))
        return record

    def _release_slot_locked(self, record: InFlight) -> None:
        record.job.in_flight -= 1
        record.pool.in_flight -= 1
        self._total_in_flight -= 1
        if record.isolated:
            record.pool.isolated -= 1
        self._owner_in_flight[record.job.owner or SYSTEM_OWNER] -= 1

    def _adapt_locked(self, pool: Pool, items: int, cpu: float, wall: float) -> None:
        """Feed a finished thread chunk to the pool's controller; apply a new level to the threads."""
        controller = pool.concurrency
        now = time.monotonic()
        controller.record(items, cpu, wall, now)
        fresh_window = controller.window is not None and controller.window.items == items
        if controller.wants_gil_sample() and fresh_window and self.config.cpu_count >= 2 and _GIL_SAMPLING:
            if pool.gil_sampler is not None:
                pool.gil_sampler.stop()
            pool.gil_sampler = GilSampler()  # read as windows close, until it tells waiting from computing
        if not controller.ready(now):
            return
        gil = pool.gil_sampler.busy() if pool.gil_sampler is not None else None
        saturated = pool.in_flight + 1 >= controller.level and any(
            job.pool == pool.name and job.has_ready() and job.max_workers is None and not job.cancel_event.is_set()
            for job in self._jobs.values())
        changed = controller.step(now, saturated, self._memory_ok(), gil, gil_sampled=pool.gil_sampler is not None)
        if pool.gil_sampler is not None and controller.gil_verdict is not None:
            pool.gil_sampler.stop()  # settled
            pool.gil_sampler = None
        if changed:
            if self.config.debug_threading:
                log.info("pool %s: concurrency %d (%s)", pool.name, controller.level, controller.reason)
            if pool.threads is not None and controller.level < pool.threads.size:
                pool.threads.resize(max(controller.level, pool.workers, pool.in_flight))
            self._lock.notify()

    # ------------------------------------------------------------------ completion
    def _run_thread_chunk(self, record: InFlight, items: list, budget: float | None) -> None:
        while True:
            if not self._run_thread_chunk_once(record, items, budget):
                return
            # Take the next chunk here rather than wake the dispatcher, which would wake a worker:
            # two thread switches per chunk cost milliseconds on a busy machine.
            following = self._next_chunk_here(record.pool)
            if following is None:
                return
            record = following
            items, budget = [item for _, item in record.chunk], None

    def _run_thread_chunk_once(self, record: InFlight, items: list, budget: float | None) -> bool:
        """Run one chunk; False when it timed out (this thread was abandoned and must stop)."""
        watch = record.watch
        assert watch is not None
        cpu = wall = 0.0
        try:
            cpu, wall = run_chunk_in_thread(record.job.fn, items, record.job.retries, RETRY_BACKOFF_S, watch,
                                            record.job.cancel_event, budget)
        finally:
            with watch.lock:
                # Timed out: the manager already accounted for this chunk, and this thread must stop.
                timed_out = watch.abandoned and record not in self._in_flight
                watch.abandoned = True
                outcomes = list(watch.outcomes)
            if not timed_out:
                self._complete(record, outcomes, cpu, wall)
        return not timed_out

    def _next_chunk_here(self, pool: Pool) -> InFlight | None:
        """The chunk the dispatcher would hand this pool next, for the calling worker thread to run now."""
        finished: Job | None = None
        with self._lock:
            if (self._stopping or pool.isolated or pool.in_flight >= self._pool_cap_locked(pool)
                    or pool.threads is None or pool.threads.retiring(threading.current_thread())
                    or self._total_in_flight >= self.config.max_total_workers
                    or (pool.in_flight > 0 and not self._memory_ok())):
                return None
            job = self._pick_job_locked(pool, self._waiting_owners_locked())
            if job is None or job.phase != "run" or job.backend != "thread":
                return None  # probes and process work stay with the dispatcher
            record = self._dispatch_chunk_locked(pool, job, run_here=True)
            if record is None and job.is_finished_locked() and not job.finished_flag:
                finished = job  # its iterator ran dry just now
        if finished is not None:
            self._after_complete(finished, [])
        return record

    def _on_process_done(self, record: InFlight, future: Future) -> None:
        try:
            outcomes, cpu, wall = future.result()
        except (BrokenProcessPool, CancelledError) as exc:
            self._after_pool_break(record, exc)
            return
        except Exception as exc:  # noqa: BLE001 - e.g. an item that cannot be pickled
            reason = f"could not run in a worker process: {type(exc).__name__}: {exc}"
            outcomes = [(False, (type(exc).__name__, reason, None), 1, 0.0)] * len(record.chunk)
            cpu = wall = 0.0
        self._complete(record, outcomes, cpu, wall)

    def _after_pool_break(self, record: InFlight, exc: BaseException) -> None:
        """A worker died or was killed: retry innocent chunks, isolate the item that broke it."""
        job, pool = record.job, record.pool
        if pool.processes is not None and not record.timed_out:
            pool.processes.rebuild(record.generation, kill=False)
        failures: list[tuple[int, Any, int, float]] = []
        with self._lock:
            if record not in self._in_flight:
                return
            self._in_flight.discard(record)
            self._release_slot_locked(record)
            if record.innocent or job.cancel_event.is_set():
                job.requeued.appendleft(record.chunk)
            elif len(record.chunk) > 1:
                job.requeued.extendleft([pair] for pair in reversed(record.chunk))
            else:
                index, _ = record.chunk[0]
                breaks, alone = job.breaks, job.alone_breaks
                breaks[index] = breaks.get(index, 0) + 1
                if record.isolated:
                    alone[index] = alone.get(index, 0) + 1
                if record.timed_out:
                    error = ItemError(index, "TimeoutError",
                                      f"took longer than {job.timeout:g}s; its worker process was replaced", 1)
                    pool.metrics.record_items([float(job.timeout or 0)], failed=1, retried=0, timed_out=1)
                elif record.isolated and alone[index] > job.retries:
                    # It ran alone in the pool and its worker died: this item is the killer.
                    limit = (f" or went past its {pool.memory_limit_mb} MB memory limit"
                             if pool.memory_limit_mb is not None else " or out of memory")
                    error = ItemError(index, "WorkerDied", f"the worker process died while running this item "
                                      f"(killed{limit})", breaks[index])
                    pool.metrics.record_items([0.0], failed=1, retried=breaks[index] - 1)
                else:
                    # Another item may have killed the pool under it: run it again alone before blaming it.
                    job.suspects.append(record.chunk)
                    error = None
                if error is not None:
                    job.store(index, error, failed=True)
                    job.failed_inputs[index] = record.chunk[0][1]
                    failures.append((index, error, error.attempts, 0.0))
            self._lock.notify()
        self._after_complete(job, failures)

    def _complete(self, record: InFlight, outcomes: list | tuple, cpu: float, wall: float,
                  extra: Sequence[tuple[int, ItemError]] = ()) -> None:
        job, pool = record.job, record.pool
        delivered: list[tuple[int, Any, int, float]] = []
        compact = isinstance(outcomes, tuple)  # (values, seconds): every item succeeded at the first attempt
        with self._lock:
            if record not in self._in_flight:
                return
            self._in_flight.discard(record)
            self._release_slot_locked(record)
            durations, failed, retried = [], 0, 0
            if compact:
                values, durations = outcomes
                job.store_ok(record.chunk, values)
                if job.on_chunk is not None:
                    delivered = [(index, value, 1, seconds)
                                 for (index, _), value, seconds in zip(record.chunk, values, durations)]
                outcomes = values
            for (index, item), (ok, value, attempts, seconds) in zip(record.chunk, () if compact else outcomes):
                if ok:
                    job.store(index, value, failed=False)
                    delivered.append((index, value, attempts, seconds))
                else:
                    message = value[1]
                    if value[0] == "MemoryError" and pool.memory_limit_mb is not None:
                        message = (f"needed more memory than the {pool.memory_limit_mb} MB one item may use "
                                   f"(MAX_MEMORY_PER_TASK_MB)")
                    error = ItemError(index, value[0], message, attempts)
                    if value[2] is not None and job.exception_for_future is None:
                        job.exception_for_future = value[2]
                    job.store(index, error, failed=True)
                    job.failed_inputs[index] = item
                    if len(value) > 3:
                        job.tracebacks[index] = value[3]
                    delivered.append((index, error, attempts, seconds))
                    failed += 1
                durations.append(seconds)
                retried += attempts - 1
            timed_out = 0
            if extra:
                durations = list(durations)
            inputs = dict(record.chunk) if extra else {}
            for index, error in extra:
                job.store(index, error, failed=True)
                job.failed_inputs[index] = inputs.get(index)
                delivered.append((index, error, error.attempts, float(job.timeout or 0)))
                durations.append(float(job.timeout or 0))
                failed += 1
                timed_out += 1
            done_count = len(outcomes) + len(extra)
            rest = record.chunk[done_count:]
            if rest:
                if job.cancel_event.is_set():
                    delivered.extend(self._cancel_pairs_locked(job, rest))
                else:
                    job.requeued.appendleft(rest)
            if durations:
                pool.metrics.record_items(durations, failed=failed, retried=retried, timed_out=timed_out)
                self._note_slowest_locked(job, record, durations)
                if pool.backend == "thread" and job.backend == "thread":
                    self._adapt_locked(pool, len(durations), cpu, wall)
                measured = (cpu if record.probe and job.requested == "auto" else wall) / len(durations)
                if not record.probe and job.backend in ("process", "dask"):
                    measured = wall / len(durations)
                job.per_item_s = measured if job.per_item_s is None else 0.5 * job.per_item_s + 0.5 * measured
            if record.probe:
                job.probe.cpu_s += cpu
                # When the chunk ran in its thread, not when it was queued: waking threads on a busy
                # machine is not time the work spent (CPU or waiting for a CPU).
                ran = record.watch.ran if record.watch is not None else None
                job.probe.spans.append(ran or (record.started, time.monotonic()))
                job.probe.items += len(durations)
                if job.in_flight == 0:
                    self._decide_backend_locked(job)
            self._lock.notify()
        self._after_complete(job, delivered)

    @staticmethod
    def _note_slowest_locked(job: Job, record: InFlight, durations: Sequence[float]) -> None:
        """Keep the job's slowest items: each chunk offers its slowest one (max and index run in C)."""
        slowest = max(durations)
        if len(job.slowest) >= SLOWEST_KEPT and slowest <= job.slowest[-1][0]:
            return
        position = durations.index(slowest)  # a list, or an array("d") from a process
        if position < len(record.chunk):
            job.slowest.append((slowest, record.chunk[position][0]))
            job.slowest.sort(reverse=True)
            del job.slowest[SLOWEST_KEPT:]

    def _after_complete(self, job: Job, delivered: list) -> None:
        """Callbacks run outside the lock: persistence first, then progress, then the finish."""
        if delivered and job.on_chunk is not None:
            try:
                job.on_chunk(job, delivered)
            except Exception:  # noqa: BLE001 - a failing callback must not stop the batch
                log.exception("on_chunk callback failed for job %s", job.id)
        if job.on_progress is not None:
            try:
                job.on_progress(job.done, job.total)
            except Exception:  # noqa: BLE001
                log.exception("on_progress callback failed for job %s", job.id)
        with self._lock:
            if job.finished_flag or job.finishing or not job.is_finished_locked():
                return
            job.finishing = True
            status: Literal["completed", "cancelled"] = "cancelled" if job.cancel_event.is_set() else "completed"
            job.mark_finished(status)
            self._retire_job_locked(job)
            done_hook = job.on_done
        if done_hook is not None:
            try:
                done_hook(job.result())
            except Exception:  # noqa: BLE001 - a failing callback must not stop the dispatcher's thread
                log.exception("on_done callback failed for job %s", job.id)
        if self.config.enable_performance_logging:
            p = job.progress()
            log.info("job %s (%s) %s: %d items, %d failed, %.2fs, %s", job.name, job.id, status, p.done,
                     p.failed, p.elapsed, job.backend)

    def _retire_job_locked(self, job: Job) -> None:
        self._jobs.pop(job.id, None)
        self._recent.append(job)

    def _decide_backend_locked(self, job: Job) -> None:
        """After a probe round: stay on threads, or move CPU-bound Python to processes (utils.sizing)."""
        probe = job.probe
        job.phase = "run"
        start = min(s for s, _ in probe.spans)
        end = max(e for _, e in probe.spans)
        # Probe rounds add up (a round may be followed by another when the first was inconclusive).
        probe.time_s += max(end - start, 1e-6)
        probe.spans = []
        probe.rounds += 1
        items = max(1, probe.items)
        cpu_per_item = probe.cpu_s / items
        wall_per_item = probe.time_s / items * min(probe.target, items)  # with the probe's concurrency
        if job.requested == "thread":
            job.per_item_s = wall_per_item if job.per_item_s is None else job.per_item_s
            return
        sampler = probe.gil_sampler
        gil = sampler.busy() if sampler is not None else None
        choice = sizing.choose_backend(
            cpu_share=probe.cpu_s / probe.time_s, gil_held=gil,
            cpu_left_s=job.waiting_count() * cpu_per_item if job.total is not None else float("inf"),
            cores=self.config.cpu_count, picklable=_picklable(job.fn), rounds=probe.rounds,
            more_items=job.has_ready())
        if choice.probe_again:
            # Some CPU use, but not clearly CPU-bound nor clearly waiting on I/O (a busy machine, a short
            # round): probe another round, with the GIL sampler still running, before choosing.
            job.phase, probe.sent = "probe", 0
            return
        if sampler is not None:
            sampler.stop()
        job.backend_reason = choice.reason
        if self.config.debug_threading:
            log.info("job %s (%s): %s", job.name, job.id, choice.reason)
        if choice.backend == "process":
            job.backend, job.pool, job.per_item_s = "process", "cpu", cpu_per_item
            return
        # Threads: size chunks from the wall time an item took with the probe's concurrency.
        job.per_item_s = wall_per_item

    # ------------------------------------------------------------------ cancel and timeouts
    def _cancel_pairs_locked(self, job: Job, pairs: list[tuple[int, Any]]) -> Delivered:
        out = []
        for index, _ in pairs:
            error = ItemError(index, "Cancelled", "the job was cancelled before this item ran", 0)
            job.store(index, error, failed=True)
            out.append((index, error, 0, 0.0))
        self._pools[job.pool].metrics.record_cancelled(len(out))
        return out

    def _cancel_waiting_locked(self, job: Job) -> list:
        return self._cancel_pairs_locked(job, job.drain_waiting())

    def _cancel_requested_locked(self) -> None:
        for job in list(self._jobs.values()):
            if job.cancel_event.is_set() and job.has_waiting():
                delivered = self._cancel_waiting_locked(job)
                threading.Thread(target=self._after_complete, args=(job, delivered), daemon=True).start()

    def _expired_locked(self) -> list[InFlight]:
        now = time.monotonic()
        expired = []
        for record in self._in_flight:
            timeout = record.job.timeout
            if not timeout or record.timed_out:
                continue
            if record.watch is not None:
                started = record.watch.current_started
                if started is not None and now - started > timeout:
                    expired.append(record)
            else:
                started = record.started
                ready_at = getattr(record.pool.processes, "ready_at", None)  # a cluster backend may not say
                ready = ready_at(record.generation) if ready_at is not None else started
                if ready is None and now - started < PROCESS_START_LIMIT_S:
                    continue  # its workers are still starting: the chunk has not begun
                started = max(started, ready or started)
                if now - started > timeout * len(record.chunk) + PROCESS_START_SLACK_S:
                    expired.append(record)
        return expired

    def _handle_timeout(self, record: InFlight) -> None:
        job = record.job
        if record.watch is not None:
            with record.watch.lock:
                if record.watch.abandoned:
                    return
                record.watch.abandoned = True
                outcomes = list(record.watch.outcomes)
            if record.pool.threads is not None:
                record.pool.threads.abandon(record.watch.thread)
            index = record.chunk[len(outcomes)][0]
            error = ItemError(index, "TimeoutError", f"took longer than {job.timeout:g}s; its worker was replaced", 1)
            self._complete(record, outcomes, 0.0, 0.0, extra=[(index, error)])
            return
        with self._lock:
            if record not in self._in_flight:
                return
            record.timed_out = True
            for other in self._in_flight:
                if other is not record and other.pool is record.pool and other.generation == record.generation:
                    other.innocent = True
        if record.pool.processes is not None:
            record.pool.processes.rebuild(record.generation, kill=True)

    def _sample_history(self) -> None:
        with self._lock:
            busy = self._total_in_flight
            rate = sum(pool.metrics.items_per_s() for pool in self._pools.values())
            workers = sum(self._pool_cap_locked(p) for p in self._pools.values() if p.threads or p.processes)
        system = self._sampler.snapshot()
        self._history.append({"t": time.time(), "items_per_s": rate, "busy_workers": busy, "workers": workers,
                              "cpu_percent": system.cpu_percent, "memory_percent": system.memory_percent})


_manager: ThreadingManager | None = None
_manager_lock = threading.Lock()  # guards _manager, the process-wide instance


def get_threading_manager() -> ThreadingManager:
    """The process-wide manager (the UI wraps this once with st.cache_resource)."""
    global _manager
    with _manager_lock:
        if _manager is None or _manager._stopping:
            _manager = ThreadingManager()
        return _manager


# ---------------------------------------------------------------------- the owner's API, as module functions
def parallel_map(fn: Callable[[Any], Any], items: Iterable[Any], max_workers: int | None = None,
                 chunk_size: int | None = None, backend: str = "auto", pool: str | None = None,
                 timeout: float | None = None, retries: int = 0,
                 on_progress: Callable[[int, int | None], None] | None = None, owner: str | None = None,
                 kind: str | None = None) -> list:
    """`fn` over `items` on the shared manager, blocking; results in input order (ItemError for a failure)."""
    return get_threading_manager().parallel_map(fn, items, max_workers=max_workers, chunk_size=chunk_size,
                                                backend=backend, pool=pool, timeout=timeout, retries=retries,
                                                on_progress=on_progress, owner=owner, kind=kind)


def batch_process_files(fn: Callable[[Any], Any], files: Sequence[Any], batch_size: int | None = None,
                        on_progress: Callable[[int, int | None], None] | None = None,
                        owner: str | None = None) -> list:
    """`fn` over `files` on the shared manager's upload pool, `batch_size` files per chunk, blocking."""
    return get_threading_manager().batch_process_files(fn, files, batch_size=batch_size, on_progress=on_progress,
                                                       owner=owner)


def get_async_queue() -> Any:
    """The durable background queue the app uses (utils.services owns it); works outside Streamlit too."""
    from utils.services import get_async_queue as services_queue  # services imports this module

    return services_queue()
