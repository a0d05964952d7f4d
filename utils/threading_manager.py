"""The one shared threading manager every page runs its work through.

Named pools of worker threads or processes; jobs are cut into chunks and handed
out by a single dispatcher thread that keeps per-user fair shares, holds work back
when memory runs low, times out stuck items and rebuilds broken process pools.
Pages never block on it: they keep a Job and poll `job.progress()`.
"""
from __future__ import annotations

import atexit
import functools
import logging
import math
import pickle
import threading
import time
from collections import defaultdict, deque
from concurrent.futures import CancelledError, Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from config.threading_config import ThreadingConfig, load_threading_config
from utils.chunk_runner import ChunkWatch, GilSampler, run_chunk_in_process, run_chunk_in_thread
from utils.item_errors import ItemError
from utils.jobs import Job, JobProgress
from utils.metrics import PoolMetrics
from utils.process_workers import ProcessWorkers
from utils.system_stats import SystemSampler
from utils.worker_threads import WorkerThreads

log = logging.getLogger(__name__)

PROBE_BUDGET_S = 0.02  # a probe chunk runs this long before the backend is chosen
PROBE_UNSURE_CPU = 0.15  # a probe using this much CPU (cores) but less than half a core is inconclusive
PROBE_MAX_ROUNDS = 3  # inconclusive probes run again, up to this many rounds in all
# Seconds of work a chunk should hold: enough to pay for its hand-off (a Dask task costs ~15 ms).
TARGET_CHUNK_S = {"thread": 0.1, "process": 0.1, "dask": 0.4}
BACKEND_WORDS = {"thread": "threads", "process": "local processes", "dask": "a Dask cluster"}
MAX_CHUNK = 10_000
PROCESS_START_SLACK_S = 2.0
PROCESS_START_LIMIT_S = 60.0  # workers not started by then count as started (so a timeout still applies)
RETRY_BACKOFF_S = 0.05
_UNSET: Any = object()


@dataclass
class Pool:
    name: str
    kind: str  # "thread" or "process" (or "dask", when a cluster is configured)
    workers: int
    timeout: float | None
    chunk_size: int | None = None
    parallel: bool = True
    threads: WorkerThreads | None = None
    processes: Any = None  # ProcessWorkers, or a cluster backend with the same methods
    in_flight: int = 0
    isolated: int = 0  # suspect items running alone after a worker death (nothing else is dispatched)
    held_for_memory: bool = False
    metrics: PoolMetrics = field(default_factory=PoolMetrics)

    def capacity(self) -> int:
        return self.workers if self.parallel else 1

    @property
    def backend_label(self) -> str:
        return self.kind if self.parallel else "sequential"


@dataclass(eq=False)
class InFlight:
    job: Job
    pool: Pool
    chunk: list[tuple[int, Any]]
    started: float
    probe: bool = False
    watch: ChunkWatch | None = None
    generation: int = 0
    timed_out: bool = False
    innocent: bool = False
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
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._pools: dict[str, Pool] = {}
        for pc in self.config.pools.values():
            self._pools[pc.name] = Pool(pc.name, pc.kind, pc.workers, pc.timeout, pc.chunk_size)
        self._jobs: dict[str, Job] = {}
        self._recent: deque[Job] = deque(maxlen=50)
        self._in_flight: set[InFlight] = set()
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

    # ------------------------------------------------------------------ public API
    def pool_names(self) -> list[str]:
        return list(self._pools)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], *, max_workers: int | None = None,
            chunk_size: int | None = None, kind: str = "auto", pool: str | None = None,
            timeout: float | None = None, retries: int = 0, owner: str | None = None, name: str | None = None,
            on_progress: Callable[[int, int | None], None] | None = None,
            on_chunk: Callable[[Job, list], None] | None = None, job_id: str | None = None) -> Job:
        """Start mapping `fn` over `items` and return at once; the Job reports progress and results."""
        if kind not in ("auto", "thread", "process", "sequential"):
            raise ValueError(f"kind must be auto, thread, process or sequential, not {kind!r}")
        pool_name = pool or ("cpu" if kind == "process" else "default")
        target = self._get_pool(pool_name)
        reason = ""
        if target.kind != "thread" and kind in ("auto", "thread"):
            kind, reason = target.kind, f"pool {pool_name!r} runs on {BACKEND_WORDS.get(target.kind, target.kind)}"
        if kind == "process" and target.kind == "thread":
            pool_name, target = "cpu", self._get_pool("cpu")
        if kind == "process" and not _picklable(fn):
            kind, reason = "thread", "the function cannot be sent to a process (lambda or closure): ran on threads"
            pool_name = pool if pool and self._pools[pool].kind == "thread" else "default"
        job = Job(fn, items, name=name or getattr(fn, "__name__", "job"), owner=owner, pool=pool_name,
                  kind="thread" if kind == "sequential" else kind, chunk_size=chunk_size,
                  max_workers=1 if kind == "sequential" else max_workers, retries=retries,
                  timeout=timeout if timeout is not None else self._pools[pool_name].timeout,
                  on_progress=on_progress, on_chunk=on_chunk, job_id=job_id)
        if kind == "sequential":
            job.backend, job.backend_reason = "sequential", "asked for sequential"
        if reason:
            job.backend_reason = reason
        if kind == "thread" and (chunk_size or self._pools[pool_name].chunk_size):
            job.phase = "run"
        job._manager = self  # lets job.cancel() wake the dispatcher
        with self._wake:
            if self._stopping:
                raise RuntimeError("the threading manager is shut down")
            self._jobs[job.id] = job
            if job.total == 0:
                job.mark_finished("completed")
                self._retire_job_locked(job)
            self._wake.notify()
        return job

    def parallel_map(self, fn: Callable[[Any], Any], items: Iterable[Any], max_workers: int | None = None,
                     chunk_size: int | None = None, kind: str = "auto", pool: str | None = None,
                     timeout: float | None = None, retries: int = 0,
                     on_progress: Callable[[int, int | None], None] | None = None, owner: str | None = None) -> list:
        """Blocking map: results in input order, a failed item's slot holds an ItemError."""
        job = self.map(fn, items, max_workers=max_workers, chunk_size=chunk_size, kind=kind, pool=pool,
                       timeout=timeout, retries=retries, on_progress=on_progress, owner=owner)
        return job.result()

    def batch_process_files(self, fn: Callable[[Any], Any], files: Sequence[Any], batch_size: int | None = None,
                            on_progress: Callable[[int, int | None], None] | None = None) -> list:
        """Process files on the upload pool, `batch_size` files per chunk."""
        return self.parallel_map(fn, files, chunk_size=batch_size or self.config.batch_size, kind="thread",
                                 pool="upload", on_progress=on_progress)

    def submit_task(self, fn: Callable, *args: Any, task_name: str | None = None, pool: str = "default",
                    owner: str | None = None, **kwargs: Any) -> Future:
        """Run one call on a pool; the Future carries its result or its exception."""
        future: Future = Future()
        call = functools.partial(fn, *args, **kwargs)
        target = self._get_pool(pool)
        kind = "process" if target.kind == "process" else "thread"

        def finish(results: list) -> None:
            value = results[0]
            if isinstance(value, ItemError):
                future.set_exception(job.exception_for_future or RuntimeError(value.message))
            else:
                future.set_result(value)

        future.set_running_or_notify_cancel()  # before the task can finish: set_result needs RUNNING/PENDING
        job = self.map(functools.partial(_invoke, call), [None], chunk_size=1, kind=kind, pool=pool,
                       name=task_name or getattr(fn, "__name__", "task"), owner=owner)
        with self._lock:  # _after_complete reads on_done under the same lock as it marks the job finished
            job.on_done = finish  # type: ignore[attr-defined]
            finished = job.finished_flag
        if finished:
            finish(job.result())
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
        """Retune a live pool; queued and running work is kept."""
        target = self._get_pool(pool)
        with self._wake:
            if workers is not None:
                if workers < 1:
                    raise ValueError(f"workers must be at least 1, not {workers}")
                target.workers = workers
                if target.threads is not None:
                    target.threads.resize(workers)
                if target.processes is not None:
                    target.processes.resize(workers)
            if chunk_size is not _UNSET:
                if chunk_size is not None and chunk_size < 1:
                    raise ValueError(f"chunk_size must be at least 1 or None, not {chunk_size}")
                target.chunk_size = chunk_size
            if parallel is not None:
                target.parallel = parallel
            if initializer is not _UNSET:
                if target.threads is not None:
                    target.threads.set_initializer(initializer)
                if target.processes is not None:
                    target.processes.set_initializer(initializer)
                target.initializer = initializer  # type: ignore[attr-defined]
            self._wake.notify()

    def pool_settings(self, pool: str) -> dict:
        target = self._get_pool(pool)
        return {"name": target.name, "kind": target.kind, "workers": target.workers,
                "chunk_size": target.chunk_size, "parallel": target.parallel, "timeout": target.timeout}

    def warm(self, pool: str = "cpu") -> None:
        """Start a process pool's workers ahead of the first batch."""
        target = self._get_pool(pool)
        with self._lock:
            backend = self._process_backend(target)
        backend.warm()

    def rate_limiter(self, name: str, rate_per_s: float, burst: int = 1):
        """One shared, thread-safe limiter per name (e.g. the geocoding API's quota)."""
        from utils.rate_limiter import RateLimiter

        with self._lock:
            limiter = self._rate_limiters.get(name)
            if limiter is None or limiter.rate_per_s != rate_per_s:
                limiter = self._rate_limiters[name] = RateLimiter(rate_per_s, burst=burst)
            return limiter

    def set_owner_present(self, owner: str, present: bool) -> None:
        """Called when a user's tab opens or closes: their jobs go on either way, their share changes.

        Counts tabs, so closing one of two tabs keeps the user present.
        """
        with self._wake:
            tabs = self._tabs.get(owner, 0) + (1 if present else -1)
            self._tabs[owner] = max(0, tabs)
            if tabs > 0:
                self._away.discard(owner)
            else:
                self._away.add(owner)
            self._wake.notify()

    def user_stats(self) -> list[dict]:
        """Per-user running chunks, waiting items and limit (the fair-share table)."""
        with self._lock:
            rows: dict[str, dict] = {}
            for job in self._jobs.values():
                if job.owner is None:
                    continue
                row = rows.setdefault(job.owner, {"user": job.owner, "jobs": 0, "running": 0, "queued_items": 0,
                                                  "limit": self._owner_limit(job.owner),
                                                  "present": job.owner not in self._away})
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
                snap.update(kind=pool.kind, backend=pool.backend_label, workers=pool.workers,
                            chunk_size=pool.chunk_size, parallel=pool.parallel, busy=pool.in_flight,
                            queued=queued[pool.name], held_for_memory=pool.held_for_memory,
                            efficiency=pool.in_flight / pool.capacity())
                pools[pool.name] = snap
            jobs = [j.progress().to_dict() for j in self._jobs.values()]
            recent = [j.progress().to_dict() for j in list(self._recent)[-10:]]
            history = list(self._history)
            memory_held = self._memory_held
        return {"pools": pools, "jobs": jobs, "recent_jobs": recent, "system": self._sampler.snapshot().to_dict(),
                "history": history, "memory_held": memory_held}

    def reset_metrics(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.metrics.reset()
            self._history.clear()
            self._recent.clear()

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Stop the manager. With cancel_futures it returns within about a second."""
        with self._wake:
            if self._stopping:
                return
            if cancel_futures:
                for job in list(self._jobs.values()):
                    job.cancel_event.set()
            elif wait:
                pending = [j for j in self._jobs.values()]
            self._wake.notify_all()
        if wait and not cancel_futures:
            for job in pending:
                job.wait()
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
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
        with self._wake:
            self._wake.notify()

    def _thread_backend(self, pool: Pool) -> WorkerThreads:
        if pool.threads is None:
            pool.threads = WorkerThreads(pool.name, pool.workers, getattr(pool, "initializer", None))
        return pool.threads

    def _process_backend(self, pool: Pool):
        if pool.processes is None:
            pool.processes = ProcessWorkers(pool.name, pool.workers, getattr(pool, "initializer", None))
        return pool.processes

    def _dispatch_loop(self) -> None:
        last_sample = 0.0
        while True:
            expired: list[InFlight] = []
            exhausted: list[Job] = []
            with self._wake:
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
                    self._wake.wait(wait)
            for job in exhausted:  # an iterator ran dry after its last chunk finished: finish the job
                self._after_complete(job, [])
            for record in expired:
                self._handle_timeout(record)
            now = time.monotonic()
            if now - last_sample >= 1.0:
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
        total_in_flight = sum(p.in_flight for p in self._pools.values())
        for pool in self._pools.values():
            pool.held_for_memory = False
            if pool.isolated:
                continue  # a suspect item runs alone until it finishes or kills its worker
            suspect = self._suspect_job_locked(pool)
            if suspect is not None:
                # Let the pool drain, then run one suspect alone: if its worker dies, it is the killer.
                if pool.in_flight == 0 and self._dispatch_chunk_locked(pool, suspect, suspect.suspects.popleft(),
                                                                       isolated=True):
                    total_in_flight += 1
                continue
            while pool.in_flight < pool.capacity() and total_in_flight < self.config.max_total_workers:
                job = self._pick_job_locked(pool)
                if job is None:
                    break
                if not memory_ok and pool.in_flight > 0:
                    pool.held_for_memory = self._memory_held = True
                    break
                if self._dispatch_chunk_locked(pool, job):
                    total_in_flight += 1
                elif job.is_finished_locked() and not job.finished_flag:
                    exhausted.append(job)
        return exhausted

    def _suspect_job_locked(self, pool: Pool) -> Job | None:
        for job in self._jobs.values():
            if job.pool == pool.name and job.suspects and not job.cancel_event.is_set():
                return job
        return None

    def _pick_job_locked(self, pool: Pool) -> Job | None:
        """Fair share: the user with the fewest running chunks goes next; one user's jobs run in order."""
        best, best_key = None, None
        for job in self._jobs.values():
            if job.pool != pool.name or job.cancel_event.is_set() or not job.has_ready():
                continue
            if job.phase == "probe" and job.in_flight and getattr(job, "probe_sent", 0) >= getattr(job, "probe_target", 1):
                continue
            if job.phase == "decide":
                continue
            if job.max_workers is not None and job.in_flight >= job.max_workers:
                continue
            if job.owner is not None and self._owner_in_flight[job.owner] >= self._owner_limit(job.owner):
                continue
            running = self._owner_in_flight[job.owner] if job.owner is not None else 0
            key = (running, self._owner_last.get(job.owner, 0.0) if job.owner else 0.0, job.created)
            if best_key is None or key < best_key:
                best, best_key = job, key
        return best

    def _slots_for(self, pool: Pool, job: Job) -> int:
        slots = pool.capacity()
        if job.max_workers is not None:
            slots = min(slots, job.max_workers)
        if job.owner is not None:
            slots = min(slots, self._owner_limit(job.owner))
        return max(1, slots)

    def _owner_limit(self, owner: str) -> int:
        """A user with no open tab keeps one worker, so the people who are here go first."""
        return 1 if owner in self._away else self.config.max_workers_per_user

    def _chunk_size_locked(self, pool: Pool, job: Job) -> int:
        slots = self._slots_for(pool, job)
        waiting = job.waiting_count() if job.total is not None else None
        explicit = job.explicit_chunk_size or pool.chunk_size
        if job.phase == "probe":
            # Up to MAX_CHUNK items: the time budget ends a probe chunk, and 256 items of cheap work
            # (a few µs) measure thread start-up rather than the work.
            size = max(1, min(MAX_CHUNK, math.ceil(waiting / slots)) if waiting else 256)
            return min(size, explicit) if explicit else size  # an explicit chunk size holds for the probe too
        if explicit:
            return explicit
        if job.per_item_s is None:
            return 8
        backend = "thread" if job.backend not in ("process", "dask") else ("dask" if pool.kind == "dask" else "process")
        size = int(TARGET_CHUNK_S[backend] / max(job.per_item_s, 1e-7))
        size = max(1, min(MAX_CHUNK, size))
        if waiting:
            # Several chunks per worker balance the load, but never chunks shorter than ~10 ms.
            floor = max(1, int(0.1 * TARGET_CHUNK_S[backend] / max(job.per_item_s, 1e-7)))
            size = min(size, max(floor, math.ceil(waiting / (slots * 2))))
        return max(1, size)

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
        if probe and not job.in_flight and not getattr(job, "probe_sent", 0):
            job.probe_target = min(self._slots_for(pool, job), pool.capacity() - pool.in_flight) or 1
            if job.kind == "auto" and self.config.cpu_count >= 2 and getattr(job, "gil_sampler", None) is None:
                job.gil_sampler = GilSampler()  # stopped when the backend is chosen
        if probe:
            job.probe_sent = getattr(job, "probe_sent", 0) + 1
        if job.started is None:
            job.started = now
        job.status = "probing" if probe and job.kind == "auto" else "running"
        job.chunk_size = size if not probe else job.chunk_size
        job.in_flight += 1
        pool.in_flight += 1
        if job.owner is not None:
            self._owner_in_flight[job.owner] += 1
            self._owner_last[job.owner] = now
        record = InFlight(job, pool, chunk, now, probe=probe, isolated=isolated)
        if isolated:
            pool.isolated += 1
        self._in_flight.add(record)
        items = [item for _, item in chunk]
        if job.backend in ("process", "dask"):
            job.backend = "dask" if pool.kind == "dask" else "process"  # say where it really ran
            backend = self._process_backend(pool)
            try:
                future, record.generation = backend.submit(run_chunk_in_process, job.fn, items, job.retries,
                                                           RETRY_BACKOFF_S)
            except Exception as exc:  # noqa: BLE001 - a pool that cannot start falls back to threads
                log.warning("process pool %s cannot run (%s); falling back to threads", pool.name, exc)
                job.backend, job.backend_reason = "thread", f"process pool could not start ({exc}); ran on threads"
                self._in_flight.discard(record)
                self._release_slot_locked(record)
                job.requeued.appendleft(chunk)
                job.pool = "default" if pool.kind != "thread" else pool.name
                return None
            future.add_done_callback(functools.partial(self._on_process_done, record))
        else:
            record.watch = ChunkWatch()
            if run_here:
                return record
            budget = PROBE_BUDGET_S if probe else None
            work = functools.partial(self._run_thread_chunk, record, items, budget)
            self._thread_backend(pool).submit(work)
        return record

    def _release_slot_locked(self, record: InFlight) -> None:
        record.job.in_flight -= 1
        record.pool.in_flight -= 1
        if record.isolated:
            record.pool.isolated -= 1
        if record.job.owner is not None:
            self._owner_in_flight[record.job.owner] -= 1

    # ------------------------------------------------------------------ completion
    def _run_thread_chunk(self, record: InFlight, items: list, budget: float | None) -> None:
        while True:
            if not self._run_thread_chunk_once(record, items, budget):
                return
            # Take the next chunk here rather than wake the dispatcher, which would wake a worker:
            # two thread switches per chunk cost milliseconds on a busy machine.
            record = self._next_chunk_here(record.pool)
            if record is None:
                return
            items, budget = [item for _, item in record.chunk], None

    def _run_thread_chunk_once(self, record: InFlight, items: list, budget: float | None) -> bool:
        """Run one chunk; False when it timed out (this thread was abandoned and must stop)."""
        watch = record.watch
        cpu = wall = 0.0
        try:
            cpu, wall = run_chunk_in_thread(record.job.fn, items, record.job.retries, RETRY_BACKOFF_S, watch,
                                            record.job.cancel_event, budget)
        finally:
            with watch.lock:
                if watch.abandoned and record not in self._in_flight:
                    return False  # timed out: the manager already accounted for this chunk
                watch.abandoned = True
                outcomes = list(watch.outcomes)
            self._complete(record, outcomes, cpu, wall)
        return True

    def _next_chunk_here(self, pool: Pool) -> InFlight | None:
        """The chunk the dispatcher would hand this pool next, for the calling worker thread to run now."""
        finished: Job | None = None
        with self._wake:
            if (self._stopping or pool.isolated or pool.in_flight >= pool.capacity() or pool.threads is None
                    or pool.threads.retiring(threading.current_thread())
                    or sum(p.in_flight for p in self._pools.values()) >= self.config.max_total_workers
                    or (pool.in_flight > 0 and not self._memory_ok())):
                return None
            job = self._pick_job_locked(pool)
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
        with self._wake:
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
                breaks = getattr(job, "breaks", {})
                job.breaks = breaks
                breaks[index] = breaks.get(index, 0) + 1
                alone = getattr(job, "alone_breaks", {})
                job.alone_breaks = alone
                if record.isolated:
                    alone[index] = alone.get(index, 0) + 1
                if record.timed_out:
                    error = ItemError(index, "TimeoutError",
                                      f"took longer than {job.timeout:g}s; its worker process was replaced", 1)
                    pool.metrics.record_items([float(job.timeout or 0)], failed=1, retried=0, timed_out=1)
                elif record.isolated and alone[index] > job.retries:
                    # It ran alone in the pool and its worker died: this item is the killer.
                    error = ItemError(index, "WorkerDied", "the worker process died while running this item "
                                      "(killed or out of memory)", breaks[index])
                    pool.metrics.record_items([0.0], failed=1, retried=breaks[index] - 1)
                else:
                    # Another item may have killed the pool under it: run it again alone before blaming it.
                    job.suspects.append(record.chunk)
                    error = None
                if error is not None:
                    job.store(index, error, failed=True)
                    failures.append((index, error, error.attempts, 0.0))
            self._wake.notify()
        self._after_complete(job, failures)

    def _complete(self, record: InFlight, outcomes: list | tuple, cpu: float, wall: float,
                  extra: list[tuple[int, ItemError]] = ()) -> None:
        job, pool = record.job, record.pool
        delivered: list[tuple[int, Any, int, float]] = []
        compact = isinstance(outcomes, tuple)  # (values, seconds): every item succeeded at the first attempt
        with self._wake:
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
            for (index, _), (ok, value, attempts, seconds) in zip(record.chunk, () if compact else outcomes):
                if ok:
                    job.store(index, value, failed=False)
                    delivered.append((index, value, attempts, seconds))
                else:
                    error = ItemError(index, value[0], value[1], attempts)
                    if value[2] is not None and job.exception_for_future is None:
                        job.exception_for_future = value[2]
                    job.store(index, error, failed=True)
                    delivered.append((index, error, attempts, seconds))
                    failed += 1
                durations.append(seconds)
                retried += attempts - 1
            timed_out = 0
            if extra:
                durations = list(durations)
            for index, error in extra:
                job.store(index, error, failed=True)
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
                measured = (cpu if record.probe and job.kind == "auto" else wall) / len(durations)
                if not record.probe and job.backend in ("process", "dask"):
                    measured = wall / len(durations)
                job.per_item_s = measured if job.per_item_s is None else 0.5 * job.per_item_s + 0.5 * measured
            if record.probe:
                job.probe_cpu += cpu
                # When the chunk ran in its thread, not when it was queued: waking threads on a busy
                # machine is not time the work spent (CPU or waiting for a CPU).
                ran = record.watch.ran if record.watch is not None else None
                job.probe_span.append(ran or (record.started, time.monotonic()))
                job.probe_items = getattr(job, "probe_items", 0) + len(durations)
                if job.in_flight == 0:
                    self._decide_backend_locked(job)
            self._wake.notify()
        self._after_complete(job, delivered)

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
        with self._wake:
            if job.finished_flag or getattr(job, "finishing", False) or not job.is_finished_locked():
                return
            job.finishing = True
        status = "cancelled" if job.cancel_event.is_set() else "completed"
        with self._wake:
            job.mark_finished(status)
            self._retire_job_locked(job)
            done_hook = getattr(job, "on_done", None)
        if done_hook is not None:
            done_hook(job.result())
        if self.config.enable_performance_logging:
            p = job.progress()
            log.info("job %s (%s) %s: %d items, %d failed, %.2fs, %s", job.name, job.id, status, p.done,
                     p.failed, p.elapsed, job.backend)

    def _retire_job_locked(self, job: Job) -> None:
        self._jobs.pop(job.id, None)
        self._recent.append(job)

    def _decide_backend_locked(self, job: Job) -> None:
        """After the probe round: stay on threads, or move CPU-bound Python to processes."""
        job.phase = "run"
        start = min(s for s, _ in job.probe_span)
        end = max(e for _, e in job.probe_span)
        # Probe rounds add up (a round may be followed by another when the first was inconclusive).
        job.probe_time = getattr(job, "probe_time", 0.0) + max(end - start, 1e-6)
        job.probe_span = []
        job.probe_rounds = getattr(job, "probe_rounds", 0) + 1
        span = job.probe_time
        ratio = job.probe_cpu / span
        # On a busy machine CPU-bound Python gets less CPU than wall time and would pass for I/O;
        # the GIL sampler sees it hold the GIL all the same (sleeping I/O leaves the GIL free).
        sampler = getattr(job, "gil_sampler", None)
        gil = sampler.busy() if sampler is not None else None
        cpu_bound = ratio >= 0.5 or (gil is not None and gil >= 0.5)
        items = max(1, getattr(job, "probe_items", 1))
        cpu_per_item = job.probe_cpu / items
        remaining = job.waiting_count() * cpu_per_item if job.total is not None else float("inf")
        cores = self.config.cpu_count
        if (job.kind == "auto" and not cpu_bound and ratio >= PROBE_UNSURE_CPU and (gil is None or gil >= 0.15)
                and job.probe_rounds < PROBE_MAX_ROUNDS and remaining >= 0.25 and cores >= 2 and job.has_ready()):
            # Some CPU use, but not clearly CPU-bound nor clearly waiting on I/O (a busy machine, a short
            # round): probe another round, with the GIL sampler still running, before choosing.
            job.phase, job.probe_sent = "probe", 0
            return
        if sampler is not None:
            sampler.stop()
        if job.kind == "thread":
            job.per_item_s = span / items * min(job.probe_target, items) if job.per_item_s is None else job.per_item_s
            return
        if not cpu_bound:
            gil_text = f", GIL held {gil:.0%}" if gil is not None else ""
            job.backend_reason = f"I/O-bound: CPU busy {ratio:.0%} of the time in the first chunks{gil_text}, so threads"
        elif cores < 2:
            job.backend_reason = "one CPU core: processes cannot help, so threads"
        elif ratio >= 1.5:
            job.backend_reason = f"releases the GIL: {ratio:.1f} cores busy on threads, so threads"
        elif remaining < 0.25:
            job.backend_reason = "too little work left to pay for processes, so threads"
        elif not _picklable(job.fn):
            job.backend_reason = "CPU-bound, but the function cannot be sent to a process (lambda or closure)"
        else:
            job.backend = "process"
            job.pool = "cpu"
            job.per_item_s = cpu_per_item
            busy = f"{ratio:.1f} cores busy on threads" + (
                f", GIL held {gil:.0%} of the time on a busy machine" if ratio < 0.5 and gil is not None else "")
            job.backend_reason = f"CPU-bound Python holds the GIL ({busy}), so processes"
            return
        # Threads: size chunks from the wall time an item took with the probe's concurrency.
        job.per_item_s = span / items * min(job.probe_target, items)

    # ------------------------------------------------------------------ cancel and timeouts
    def _cancel_pairs_locked(self, job: Job, pairs: list[tuple[int, Any]]) -> list:
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
        with self._wake:
            if record not in self._in_flight:
                return
            record.timed_out = True
            for other in self._in_flight:
                if other is not record and other.pool is record.pool and other.generation == record.generation:
                    other.innocent = True
        record.pool.processes.rebuild(record.generation, kill=True)

    def _sample_history(self) -> None:
        with self._lock:
            busy = sum(p.in_flight for p in self._pools.values())
            rate = 0.0
            for pool in self._pools.values():
                rate += pool.metrics.snapshot()["items_per_s"]
            workers = sum(p.capacity() for p in self._pools.values() if p.threads or p.processes)
        system = self._sampler.snapshot()
        self._history.append({"t": time.time(), "items_per_s": rate, "busy_workers": busy, "workers": workers,
                              "cpu_percent": system.cpu_percent, "memory_percent": system.memory_percent})


_manager: ThreadingManager | None = None
_manager_lock = threading.Lock()


def get_threading_manager() -> ThreadingManager:
    """The process-wide manager (the UI wraps this once with st.cache_resource)."""
    global _manager
    with _manager_lock:
        if _manager is None or _manager._stopping:
            _manager = ThreadingManager()
        return _manager
