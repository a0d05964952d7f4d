"""Durable batch jobs: every job and item lives in the store, so a reload, a restart or a store outage loses nothing.

A page submits a batch as (registered task, inputs, params); the queue writes the
job and its items, runs them on the shared manager, and stores results as each
chunk finishes. Submitting the same batch again returns the same job (Streamlit
reruns scripts on every click); if that job ended cancelled, failed or with items
left, only its unfinished items run again.

Flow: submit_batch → manager.map, while the pending items and then the job row are
stored (results finished meanwhile are held until the job is stored) → on_chunk
(the worker thread prepares its rows: store.prepare_results) → save buffer →
writer thread → store.save_prepared, several chunks in one transaction (counters
change in the same transaction) → finish (never "completed" while an item is pending).

- The store holds data, never code: a job names a task registered in
  utils/task_registry.py; an unknown name fails the job with the reason and runs nothing.
- Saves go through a bounded buffer drained by one writer thread that retries with
  backoff while the store is away; when the buffer is full, the chunk that wants
  to add rows waits. `store_health()` says whether the store answers, for the page.
- Several servers may share one store: a server runs a job only while it holds the
  job's lease (owner server id + expiry), renewed by a heartbeat thread; another
  server takes the job over only after the lease expired.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict, deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

import orjson

from utils.item_errors import ItemError
from utils.jobs import Job
from utils.task_registry import UnknownTaskError, register_task, resolve_task, task, task_name
from utils.threading_manager import ThreadingManager

log = logging.getLogger(__name__)
ACTIVE = ("pending", "running")
RERUN_STATUSES = ("cancelled", "failed", "completed")  # a resubmit re-runs such a job's unfinished items
PLAIN_TASK = "task.call"  # the task that runs one submit()ed call
DEFAULT_LEASE_S = 30.0
DEFAULT_BUFFER_ROWS = 20_000
WRITE_BATCH_ROWS = 5_000  # rows the writer saves in one go (several chunks coalesced)
GROUP_COMMIT_S = 0.05  # after a write, wait this long for more rows unless a full batch is queued already
BACKOFF_FIRST_S = 0.05
BACKOFF_MAX_S = 2.0
CLAIM_BATCH = 2  # unowned jobs a server takes per round, so several servers share them (more after each finish)
FINISH_RESTARTS = 2
ROWS_GRACE_S = 10.0  # how long a finished run waits for rows still on their way before it finishes anyway  # times a job whose items stayed pending is run again before it fails
KEPT_VALUES = 1000  # submit()ed return values kept in memory for get_result


def call_item(fn: Callable | str, params: dict, item: Any) -> Any:
    """What a worker runs for one stored item: fn(item, params). A name is looked up in the task registry."""
    target = resolve_task(fn) if isinstance(fn, str) else fn
    return target(item, params)


@task(PLAIN_TASK)
def run_plain(item: dict, _params: dict) -> Any:
    """The task behind submit(fn, *args): the call's own function is registered, looked up by name."""
    return resolve_task(item["fn"])(*item.get("args", ()), **item.get("kwargs", {}))


register_task(run_plain, "utils.task_queue:_run_plain")  # its name in jobs stored before the registry


def batch_key(fn_name: str, params: dict, inputs: Sequence[Any]) -> str:
    """Same task, parameters and inputs give the same key, so a resubmit finds the job."""
    digest = hashlib.sha256()
    digest.update(fn_name.encode())
    digest.update(json.dumps(params, sort_keys=True, default=str).encode())
    try:  # one encode for the batch, in C: 100,000 records take a fraction of a second, not seconds
        encoded = orjson.dumps(list(inputs), default=str, option=_AS_JSON_MODULE | orjson.OPT_SORT_KEYS)
    except TypeError:  # what orjson refuses (an int past 64 bits): the json module
        encoded = json.dumps(list(inputs), sort_keys=True, default=str).encode()
    digest.update(encoded)
    return digest.hexdigest()[:32]


# orjson, told to hand dates and dataclasses to default=str and to write {1: x} as {"1": x}, as json.dumps does.
_AS_JSON_MODULE = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _jsonable(value: Any) -> Any:
    """The value as JSON gives it back (anything else as its text). In C with orjson: 100,000 records in a
    fraction of a second; the json module for what orjson refuses (an int past 64 bits, a lone surrogate)."""
    try:
        return orjson.loads(orjson.dumps(value, default=str, option=_AS_JSON_MODULE))
    except TypeError:
        return json.loads(json.dumps(value, default=str))


def _is_data_error(exc: BaseException) -> bool:
    """True when retrying cannot help (the rows themselves are refused); outages and locks are retried."""
    if isinstance(exc, (ValueError, TypeError, KeyError, sqlite3.IntegrityError, sqlite3.DataError)):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a requirement
        return False
    return isinstance(exc, (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError))


def _later(seconds: float, fn: Callable[[], None]) -> None:
    timer = threading.Timer(seconds, fn)
    timer.daemon = True
    timer.start()


def _log_listener_error(job_id: str, future: Future) -> None:
    if future.exception() is not None:
        log.warning("job %s: a finish listener failed: %s", job_id, future.exception())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class TaskFailedError(RuntimeError):
    """A submit()ed task failed; the message is the stored reason."""


@dataclass(frozen=True)
class StoreHealth:
    """Whether results reach the store, for a page to show ("store unavailable, N results waiting")."""

    available: bool
    buffered_rows: int  # results held in memory, not yet stored
    buffer_limit: int
    waiting_chunks: int  # chunks blocked because the buffer is full
    last_error: str  # short, no connection string: the exception's type and first line
    unavailable_since: float | None  # epoch seconds

    @property
    def message(self) -> str:
        if self.available:
            return "store available"
        return (f"store unavailable: {self.buffered_rows} results are held until it answers"
                + (f", {self.waiting_chunks} chunks waiting" if self.waiting_chunks else ""))


@dataclass
class _Save:
    job_id: str
    rows: list[dict]
    prepared: Any = None  # store.prepare_results(rows), made by the worker thread; None when it refused them


@dataclass
class _Finish:
    job_id: str
    cancelled: bool


@dataclass
class _LiveJob:
    """A job this server runs now."""

    job: Job | None  # None while a job with nothing left to run is being finished
    state: Literal["running", "finishing", "lost", "discarded"] = "running"
    inline_inputs: list | None = None
    stored: bool = True  # False while a new job's row and items are being written (its run has started)
    held: list[list[dict]] = field(default_factory=list)  # rows finished before the job was stored
    force_finish: Callable[[], None] | None = None  # ends the job after ROWS_GRACE_S if rows never come
    restarts: int = 0
    expected: int = 0  # items this run hands to the store
    queued: int = 0  # rows handed to the save buffer so far
    persisting: int = 0  # on_chunk calls still handing rows to the save buffer
    run_ended: bool = False  # the engine said every item is done; finish once no rows are on their way
    cancelled: bool = False

    def ready_to_finish(self) -> bool:
        return (self.stored and self.run_ended and self.persisting == 0 and self.state == "running"
                and (self.cancelled or self.queued >= self.expected))


def _short_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text.split("postgresql://")[0].split("postgres://")[0]  # never show a connection string
    return f"{type(exc).__name__}: {text}"[:200]


class SaveWriter:
    """One thread that stores buffered results in order, retrying with backoff while the store is away."""

    def __init__(self, store: Any, limit_rows: int, on_finish: Callable[[str, bool], None]) -> None:
        self.store = store
        self.limit_rows = max(1, limit_rows)
        self._on_finish = on_finish
        self._cond = threading.Condition()  # guards every field below
        self._entries: deque[_Save | _Finish] = deque()
        self._rows = 0
        self._waiting = 0
        self._available = True
        self._last_error = ""
        self._down_since: float | None = None
        self._busy = False
        self._stopping = False
        self._finishes = 0  # _Finish entries queued: a job waits for its end, so the writer writes at once
        self._flushing = 0  # threads in flush(): they wait too
        # Set when gathering more rows would only keep someone waiting (not a guarded field: an Event).
        self._hurry = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="spindle-store-writer", daemon=True)
        self._thread.start()

    def put_rows(self, job_id: str, rows: list[dict]) -> None:
        """Queue rows for the store; waits while the buffer is full (a chunk bigger than the buffer goes in alone).

        The rows are prepared (encoded) here, in the caller's thread: the worker threads share that work,
        and the writer thread, which every save waits for, only writes.
        """
        try:
            prepared = self.store.prepare_results(job_id, rows)
        except Exception as exc:  # noqa: BLE001 - e.g. a result JSON cannot hold: the writer saves row by row
            if not _is_data_error(exc):
                raise
            prepared = None
        with self._cond:
            self._waiting += 1
            try:
                while self._rows and self._rows + len(rows) > self.limit_rows and not self._stopping:
                    self._cond.wait(0.5)
            finally:
                self._waiting -= 1
            self._entries.append(_Save(job_id, rows, prepared))
            self._rows += len(rows)
            if self._rows >= WRITE_BATCH_ROWS:
                self._hurry.set()
            if len(self._entries) == 1:
                self._cond.notify_all()  # the writer may be idle; otherwise it takes these rows with the next batch

    def put_finish(self, job_id: str, cancelled: bool) -> None:
        with self._cond:
            self._entries.append(_Finish(job_id, cancelled))
            self._finishes += 1
            self._cond.notify_all()
        self._hurry.set()

    def health(self) -> StoreHealth:
        with self._cond:
            return StoreHealth(self._available, self._rows, self.limit_rows, self._waiting, self._last_error,
                               self._down_since)

    def report(self, exc: BaseException | None) -> None:
        """Record whether the store answered (the heartbeat reports too)."""
        with self._cond:
            if exc is None:
                self._available, self._down_since = True, None
            else:
                if self._available:
                    self._down_since = time.time()
                self._available, self._last_error = False, _short_error(exc)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything buffered is stored; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flushing += 1
            self._hurry.set()
            try:
                while self._entries or self._busy:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._cond.wait(0.05 if left is None else min(0.05, left))
            finally:
                self._flushing -= 1
        return True

    def stop(self, timeout: float = 5.0) -> None:
        self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._hurry.set()
        self._thread.join(timeout)

    def _take(self) -> list[_Save | _Finish]:
        """The next batch: consecutive saves up to WRITE_BATCH_ROWS, or one finish (waits for work)."""
        with self._cond:
            while not self._entries and not self._stopping:
                self._cond.wait()
            if not self._entries:
                return []
            self._busy = True
            first = self._entries[0]
            if isinstance(first, _Finish):
                return [first]
            batch: list[_Save | _Finish] = []
            rows = 0
            for entry in self._entries:
                if not isinstance(entry, _Save) or (batch and rows + len(entry.rows) > WRITE_BATCH_ROWS):
                    break
                batch.append(entry)
                rows += len(entry.rows)
            return batch

    def _loop(self) -> None:
        delay = BACKOFF_FIRST_S
        while True:
            batch = self._take()
            if not batch:
                return
            try:
                self._apply(batch)
            except Exception as exc:  # noqa: BLE001 - the store is away: keep the rows, wait, try again
                self.report(exc)
                log.warning("saving results failed (%s); retrying in %.2f s", _short_error(exc), delay)
                retry_at = time.monotonic() + delay
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
                    while not self._stopping and time.monotonic() < retry_at:  # new rows do not cut the backoff
                        self._cond.wait(retry_at - time.monotonic())
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            delay = BACKOFF_FIRST_S
            self._hurry.clear()  # before looking: a set() from now on ends the gathering below
            with self._cond:
                for entry in batch:
                    self._entries.popleft()
                    if isinstance(entry, _Save):
                        self._rows -= len(entry.rows)
                    else:
                        self._finishes -= 1
                self._busy = False
                self._cond.notify_all()
                gather = (self._rows < WRITE_BATCH_ROWS and not self._finishes and not self._flushing
                          and not self._stopping)
            self.report(None)
            if gather:
                # Let a few chunks gather: one transaction for many rows, fewer thread switches; a finish,
                # a flush or a full batch ends the wait at once.
                self._hurry.wait(GROUP_COMMIT_S)

    def _apply(self, batch: list[_Save | _Finish]) -> None:
        if isinstance(batch[0], _Finish):
            self._on_finish(batch[0].job_id, batch[0].cancelled)
            return
        by_job: dict[str, list[_Save]] = {}
        for entry in batch:
            assert isinstance(entry, _Save)
            by_job.setdefault(entry.job_id, []).append(entry)
        for job_id, saves in by_job.items():
            try:
                if all(save.prepared is not None for save in saves):
                    self.store.save_prepared(job_id, [save.prepared for save in saves])
                else:
                    self.store.save_results(job_id, [row for save in saves for row in save.rows])
            except Exception as exc:  # noqa: BLE001
                if not _is_data_error(exc):
                    raise
                self._save_one_by_one(job_id, [row for save in saves for row in save.rows])

    def _save_one_by_one(self, job_id: str, rows: list[dict]) -> None:
        """The store refused a batch: save each row alone; a result JSON cannot hold is stored as text
        (e.g. a set), and a row the store still refuses is stored as failed with the reason."""
        for row in rows:
            try:
                self.store.save_results(job_id, [row])
                continue
            except Exception as exc:  # noqa: BLE001
                if not _is_data_error(exc):
                    raise
                error = exc
            try:
                self.store.save_results(job_id, [{**row, "result": _jsonable(row.get("result"))}])
                continue
            except Exception as exc:  # noqa: BLE001
                if not _is_data_error(exc):
                    raise
                error = exc
            self.store.save_results(job_id, [{**row, "status": "failed", "result": None,
                                              "error": f"the result could not be stored: {_short_error(error)}"}])


class AsyncTaskQueue:
    def __init__(self, manager: ThreadingManager, store: Any, *, lease_s: float = DEFAULT_LEASE_S,
                 buffer_rows: int = DEFAULT_BUFFER_ROWS, server_id: str | None = None, takeover: bool = True) -> None:
        self.manager = manager
        self.store = store
        self.lease_s = float(lease_s)
        self.server_id = server_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lock = threading.RLock()  # guards _live, _creating and starting/finishing jobs
        self._live: dict[str, _LiveJob] = {}
        self._creating: dict[tuple[str, str], str] = {}  # (owner, batch key) -> id of a job being stored now
        self._values_lock = threading.Lock()  # guards _values
        self._values: OrderedDict[str, Any] = OrderedDict()  # submit()ed task id -> its return value
        self._writer = SaveWriter(store, buffer_rows, self._finish)
        self._takeover = takeover
        self._closed = threading.Event()
        self._beat_now = threading.Event()  # set when a job finished here: look for more work at once
        self._ended = threading.Condition()  # guards _ended_count; wait() sleeps on it while a job runs here
        self._ended_count = 0  # jobs this server finished (or gave up) so far
        self._finish_listeners: dict[str, Callable[[str], None]] = {}  # name → told of each job finished here
        map_params = inspect.signature(manager.map).parameters
        self._map_takes_on_done = "on_done" in map_params
        self._map_keeps_results = "keep_results" in map_params
        self._backend_param = "backend" if "backend" in map_params else "kind"  # the engine's newer name first
        self._heartbeat = threading.Thread(target=self._heartbeat_loop, name="spindle-lease-heartbeat", daemon=True)
        self._heartbeat.start()

    # ------------------------------------------------------------------ submitting
    def submit_batch(self, fn: Callable | str, inputs: Sequence[Any], *, owner: str, kind: str,
                     params: dict | None = None, idem_key: str | None = None, pool: str | None = None,
                     exec_kind: str = "auto", chunk_size: int | None = None, timeout: float | None = None,
                     retries: int = 0, max_workers: int | None = None, _inline_inputs: list | None = None) -> str:
        """Start (or find) the durable job for this batch and return its id at once.

        fn: a registered task (its name, or the function, which is then registered in
        this process); it is called as fn(item, params) for each input.
        max_workers, chunk_size: the job's own (kept with it, so a resumed job keeps them).
        """
        name = task_name(fn) if callable(fn) else fn
        resolve_task(name)  # fail now, in the page, if the task is unknown
        params = params or {}
        inputs = _jsonable(list(inputs))  # one encode for the batch: what the store keeps, and what runs
        key = idem_key or batch_key(name, params, inputs)
        with self._lock:
            creating = self._creating.get((owner, key))
            if creating is not None:
                return creating  # the same batch, submitted a moment ago: its job is being stored
            existing = self.store.find_job_by_key(owner, key)
            if existing is not None:
                self._resubmit_locked(existing)
                return existing["id"]
            job_id = uuid.uuid4().hex[:16]
            started = time.time()
            record = {"id": job_id, "owner": owner, "kind": kind, "fn": name,
                      "params": params | {"_exec": {"pool": pool, "kind": exec_kind, "chunk_size": chunk_size,
                                                    "timeout": timeout, "retries": retries,
                                                    "max_workers": max_workers}},
                      "status": "running", "total": len(inputs), "done": 0, "failed": 0, "backend_used": "",
                      "error": "", "created_at": started, "started_at": started, "finished_at": None,
                      "idem_key": key, "lease_owner": self.server_id, "lease_expires": started + self.lease_s}
            pending = list(enumerate(inputs))
            self._creating[(owner, key)] = job_id
            # The run starts now and its results are held until the job is stored: writing 20k items
            # takes as long as running a good part of them, so both go on at once.
            self._start_locked(record, inline_inputs=_inline_inputs, pending=pending, new=True)
        try:
            # Items first, then the job row: a job is never seen (or resumed) without its items; a crash
            # in between leaves items no job names, and nothing ran that was stored.
            self.store.add_items(job_id, pending)
            created = self.store.create_job(record)
        except BaseException:
            self._discard(job_id)
            raise
        finally:
            with self._lock:
                self._creating.pop((owner, key), None)
        if not created:  # another server stored the same batch first: its job is the one
            self._discard(job_id)
            found = self.store.find_job_by_key(owner, key)
            return found["id"] if found else job_id
        self._release_held(job_id)
        return job_id

    def _release_held(self, job_id: str) -> None:
        """The job is stored: hand the rows its run finished meanwhile to the writer, then save directly."""
        while True:
            with self._lock:
                live = self._live.get(job_id)
                if live is None:
                    return
                batches, live.held = live.held, []
                if not batches:
                    live.stored = True
                    finish = live.ready_to_finish()
                    if finish:
                        live.state = "finishing"
                    elif live.run_ended and live.force_finish is not None:
                        _later(ROWS_GRACE_S, live.force_finish)  # as done() does for a stored job
                    break
            for rows in batches:  # outside the lock: put_rows waits while the buffer is full
                self._writer.put_rows(job_id, rows)
                with self._lock:
                    live.queued += len(rows)
        if finish:
            self._writer.put_finish(job_id, live.cancelled)

    def _discard(self, job_id: str) -> None:
        """The job could not be stored (or another server's is the one): stop its run and drop its rows."""
        with self._lock:
            live = self._live.get(job_id)
            if live is None:
                return
            live.state = "discarded"
            live.held = []
            if live.run_ended or live.job is None:
                self._live.pop(job_id, None)
        if live.job is not None:
            live.job.cancel()

    def submit(self, fn: Callable | str, *args: Any, owner: str = "system", **kwargs: Any) -> str:
        """Run fn(*args, **kwargs) as a durable task; get_result(task_id) gives its return value.

        A function is registered in this process under its import path; after a restart
        it resumes only if its module registers it again (e.g. with @task).
        """
        name = task_name(fn) if callable(fn) else fn
        resolve_task(name)
        item = {"fn": name, "args": list(args), "kwargs": kwargs}
        return self.submit_batch(PLAIN_TASK, [item], owner=owner, kind="task", idem_key=uuid.uuid4().hex,
                                 exec_kind="thread", _inline_inputs=[item])

    def _resubmit_locked(self, record: dict) -> None:
        """The same batch again: run it if nobody does, and re-run only the unfinished items of an ended job."""
        job_id = record["id"]
        if job_id in self._live:
            return
        if record["status"] in RERUN_STATUSES:
            counts = self.store.item_counts(job_id)
            if not counts["pending"] and not counts["cancelled"]:
                return  # every item stored or failed with its reason: nothing to run again
            if not self.store.claim_job(job_id, self.server_id, self.lease_s):
                return
            self.store.reopen_items(job_id, ("cancelled",))
            if not self.store.pending_items(job_id):
                self.store.finish_job(job_id, record["status"], error=record.get("error") or "")
                return
            record = self.store.get_job(job_id) or record
        self._start_locked(record)

    def _start_locked(self, record: dict | None, inline_inputs: list | None = None,
                      pending: list[tuple[int, Any]] | None = None, new: bool = False) -> None:
        """Run a stored job here if this server can hold its lease; unknown tasks fail with the reason.

        new: the job is being stored by submit_batch (running, leased to us): its rows are held until then.
        """
        if record is None:
            return
        job_id = record["id"]
        if job_id in self._live or (not new and not self.store.claim_job(job_id, self.server_id, self.lease_s)):
            return  # running here already, or another server's lease holds
        try:
            task_fn = resolve_task(record["fn"])
        except UnknownTaskError as exc:
            reason = f"not run: {exc} (the store names tasks; only registered tasks run)"
            log.warning("job %s: %s", job_id, reason)
            self.store.fail_pending(job_id, reason)
            self.store.finish_job(job_id, "failed", error=reason)
            return
        if pending is None:  # a new job passes its items; otherwise the store says what is left
            pending = self.store.pending_items(job_id)
        if not pending:
            self._live[job_id] = _LiveJob(job=None, stored=not new, run_ended=True)
            if not new:  # a new (empty) job finishes once it is stored (_release_held)
                self._writer.put_finish(job_id, False)
            return
        params = dict(record.get("params") or {})
        execution = params.pop("_exec", {}) or {}
        indexes = [idx for idx, _ in pending]
        items = [item for _, item in pending]
        if inline_inputs is not None and len(inline_inputs) == len(items):
            items = list(inline_inputs)  # this process's own objects: no trip through JSON
        fn = functools.partial(call_item, task_fn, params)
        if not new:
            self.store.update_job(job_id, status="running", started_at=record.get("started_at") or time.time())
        plain = record["fn"] == PLAIN_TASK

        def persist(job: Job, delivered: list) -> None:
            live = this_run  # this run's state, even once it left _live (a lost job's late chunks)
            with self._lock:
                live.persisting += 1
            rows: list[dict] = []
            try:
                rows = rows_of(delivered)
                if live.state == "lost":  # another server runs the rest: leave its items be
                    rows = [row for row in rows if row["status"] != "cancelled"]
                if live.state == "discarded" or not live.stored:
                    with self._lock:
                        if live.state == "discarded":  # never stored: nothing of it may be
                            rows = []
                        elif not live.stored:
                            live.held.append(rows)  # _release_held hands them over (and counts them)
                            rows = []
                if rows:
                    self._writer.put_rows(job_id, rows)
            finally:
                with self._lock:
                    live.persisting -= 1
                    live.queued += len(rows)
                    finish = live.ready_to_finish()
                    if finish:
                        live.state = "finishing"
                if finish:
                    self._writer.put_finish(job_id, live.cancelled)

        def rows_of(delivered: list) -> list[dict]:
            rows = []
            for position, value, attempts, seconds in delivered:
                row = {"idx": indexes[position], "attempts": attempts, "duration_ms": seconds * 1000.0}
                if isinstance(value, ItemError):
                    cancelled = value.error_type == "Cancelled"
                    row.update(status="cancelled" if cancelled else "failed", result=None,
                               error=f"{value.error_type}: {value.message}")
                else:
                    if plain:
                        self._keep_value(job_id, value)
                    # Encoded once, by the store, on the writer thread; a value JSON cannot hold is handled there.
                    row.update(status="completed", result=value, error=None)
                rows.append(row)
            return rows

        def done(_results: list) -> None:
            with self._lock:
                live = self._live.get(job_id)
                if live is not None and live.state == "discarded":
                    self._live.pop(job_id, None)  # never stored: nothing to finish
                    return
                if live is None or live.state != "running" or live.run_ended:
                    return  # finished already, or lost to another server (which finishes it)
                live.run_ended = True
                live.cancelled = live.job is not None and live.job.cancel_event.is_set()
                if not live.ready_to_finish():
                    # Rows of the last chunks are still on their way (another thread's on_chunk): the last
                    # of them queues the finish; a timer makes sure the job ends even if one never comes.
                    # (A job not stored yet is finished by _release_held once it is.)
                    if live.stored:
                        _later(ROWS_GRACE_S, force_finish)
                    return
                live.state = "finishing"
            self._writer.put_finish(job_id, live.cancelled)

        def force_finish() -> None:
            with self._lock:
                live = self._live.get(job_id)
                if live is None or live.state != "running":
                    return
                if live.persisting or not live.stored:  # rows wait for room, or the job for its row: later
                    _later(ROWS_GRACE_S, force_finish)
                    return
                live.state = "finishing"
            self._writer.put_finish(job_id, live.cancelled)

        previous = self._live.get(job_id)
        live = _LiveJob(job=None, inline_inputs=inline_inputs, restarts=previous.restarts if previous else 0,
                        expected=len(items), stored=not new, force_finish=force_finish)
        this_run = live
        self._live[job_id] = live  # before the job starts: it may finish (and call done) at once
        extra: dict[str, Any] = {"on_done": done} if self._map_takes_on_done else {}
        if self._map_keeps_results:
            extra["keep_results"] = False  # persist() stores every result: the finished job need not hold them
        extra[self._backend_param] = execution.get("kind") or "auto"
        try:
            live.job = self.manager.map(fn, items, owner=record["owner"], name=f"{record['kind']}",
                                        pool=execution.get("pool"), chunk_size=execution.get("chunk_size"),
                                        max_workers=execution.get("max_workers"), timeout=execution.get("timeout"),
                                        retries=execution.get("retries") or 0,
                                        on_chunk=persist, job_id=job_id, **extra)
        except BaseException:
            self._live.pop(job_id, None)
            raise
        if not self._map_takes_on_done:
            live.job.on_done = done
            if live.job.finished_flag:
                done([])

    # ------------------------------------------------------------------ finishing (on the writer thread)
    def _finish(self, job_id: str, cancelled: bool) -> None:
        """Every earlier save of this job is stored: set its final state from its items."""
        live = self._live.get(job_id)
        if live is None:
            return  # not ours (any more)
        if live.state == "lost":
            with self._lock:
                self._live.pop(job_id, None)
            self._job_ended()
            return  # another server took the job over; it finishes it
        fields: dict[str, Any] = {}
        job = live.job
        if job is not None:
            fields["backend_used"] = job.backend
        if cancelled:
            self.store.cancel_pending(job_id, "the job was cancelled")
            self.store.finish_job(job_id, "cancelled", **fields)
        elif not self.store.finish_job(job_id, "completed", **fields):
            self._items_left_pending(job_id, live)
            self._job_ended()
            return
        with self._lock:
            self._live.pop(job_id, None)
        self._job_ended()
        self._beat_now.set()
        if job is not None:
            self._record_run(job, job.progress())
        self._tell_finished(job_id)

    def add_finish_listener(self, name: str, listener: Callable[[str], None]) -> None:
        """Call `listener(job_id)` on a manager thread once a job run here is stored as completed or cancelled.

        Why: what a finished job's page shows (its tables, counts) can be built the moment the job ends, while
        the page's next poll is still on its way. A listener added again under the same name replaces the
        earlier one. A listener's error is logged, never raised into the queue.
        """
        self._finish_listeners[name] = listener

    def _tell_finished(self, job_id: str) -> None:
        for listener in list(self._finish_listeners.values()):
            try:
                future = self.manager.submit_task(listener, job_id, task_name="prepare finished job")
            except Exception:  # noqa: BLE001 - a manager shutting down: nothing to prepare for
                log.debug("job %s: finish listener not started", job_id, exc_info=True)
                continue
            future.add_done_callback(functools.partial(_log_listener_error, job_id))

    def _job_ended(self) -> None:
        """Wake wait(): a job that ran here has ended (or runs again)."""
        with self._ended:
            self._ended_count += 1
            self._ended.notify_all()

    def _items_left_pending(self, job_id: str, live: _LiveJob | None) -> None:
        """The run ended but items are still pending in the store: run them again, then give up with a reason."""
        restarts = (live.restarts if live is not None else 0) + 1
        with self._lock:
            self._live.pop(job_id, None)
            if restarts <= FINISH_RESTARTS:
                log.warning("job %s ended with items still pending; running them again", job_id)
                record = self.store.get_job(job_id)
                try:
                    self._start_locked(record)
                except RuntimeError:  # e.g. the manager is shutting down: a later start (or server) resumes it
                    log.exception("job %s could not be run again here", job_id)
                    self.store.release_lease(job_id, self.server_id)
                    return
                if job_id in self._live:
                    self._live[job_id].restarts = restarts
                return
        reason = "the item's result was never stored"
        self.store.fail_pending(job_id, reason)
        self.store.finish_job(job_id, "failed", error=reason)

    def _record_run(self, job: Job, progress: Any) -> None:
        try:
            pool = self.manager.pool_settings(job.pool)
            self.store.record_run({"workload": job.name, "backend": job.backend, "workers": pool["workers"],
                                   "chunk_size": progress.chunk_size or 0, "items": progress.done,
                                   "seconds": progress.elapsed, "source": "job", "created_at": time.time()})
        except Exception:  # noqa: BLE001 - analytics must never break a job
            log.exception("could not record run for job %s", job.id)

    def _keep_value(self, job_id: str, value: Any) -> None:
        with self._values_lock:
            self._values[job_id] = value
            while len(self._values) > KEPT_VALUES:
                self._values.popitem(last=False)

    # ------------------------------------------------------------------ leases
    def _heartbeat_loop(self) -> None:
        """Renew this server's leases; stop jobs whose lease was taken over; take over expired ones."""
        while not self._closed.is_set():
            self._beat_now.wait(self.lease_s / 3)
            self._beat_now.clear()
            if self._closed.is_set():
                return
            try:
                self.heartbeat()
            except Exception as exc:  # noqa: BLE001 - the store is away; the next beat tries again
                self._writer.report(exc)
                log.warning("lease heartbeat failed: %s", _short_error(exc))

    def heartbeat(self) -> None:
        with self._lock:
            running = [job_id for job_id, live in self._live.items() if live.state == "running" and live.job
                       and live.stored]
        if running:
            held = self.store.renew_leases(running, self.server_id, self.lease_s)
            for job_id in set(running) - held:
                self._lose(job_id)
        if self._takeover:
            self.resume_incomplete()

    def _lose(self, job_id: str) -> None:
        """Another server holds this job now (or it was cancelled elsewhere): stop running it here."""
        with self._lock:
            live = self._live.get(job_id)
            if live is None or live.state != "running":
                return
            live.state = "lost"
        log.warning("job %s: lease lost; stopping it on this server", job_id)
        if live.job is not None:
            live.job.cancel()
            self._writer.put_finish(job_id, True)

    # ------------------------------------------------------------------ reading and control
    def get_status(self, job_id: str) -> dict | None:
        """Live progress when the job runs here; otherwise what the store says.

        While the store is away (or a new job is still being stored), a job running here reports its
        live progress.
        """
        live = self._live.get(job_id)
        try:
            record = self.store.get_job(job_id)
        except Exception as exc:  # noqa: BLE001 - the store is away: the live job still answers
            if live is None or live.job is None:
                raise
            self._writer.report(exc)
            record = None
        if record is None and live is not None and live.job is not None and live.state != "discarded":
            progress = live.job.progress()
            record = {"id": job_id, "owner": live.job.owner, "kind": live.job.name, "status": "running",
                      "total": progress.total or 0, "done": 0, "failed": 0, "error": ""}
        if record is None:
            return None
        status = dict(record)
        status.pop("params", None)
        if live is not None and live.job is not None:
            progress = live.job.progress()
            finished_before = record["total"] - (progress.total or 0)  # items done before a resume
            status.update(status="running", done=max(record.get("done") or 0, finished_before + progress.done),
                          failed=max(record.get("failed") or 0, progress.failed),
                          rate=progress.rate, eta=progress.eta, backend_used=progress.backend,
                          backend_reason=progress.backend_reason)
        elif live is not None:
            status["status"] = "running"
        status["fraction"] = (status["done"] / status["total"]) if status["total"] else 1.0
        status["store"] = self.store_health().message
        return status

    def get_result(self, task_id: str, timeout: float | None = None) -> Any:
        """The return value of a submit()ed task (waits for it to finish, like Future.result()).

        For a batch job: the results in input order (None for a failed item); item_rows() gives the stored rows.
        Raises TaskFailedError with the reason when the task failed, TimeoutError when it is still running.
        """
        status = self.wait(task_id, timeout)
        if status is None:
            raise KeyError(f"no task {task_id!r}")
        if status["status"] in ACTIVE:
            raise TimeoutError(f"task {task_id} is still {status['status']}")
        self._writer.flush(timeout)
        with self._values_lock:
            if task_id in self._values:
                return self._values[task_id]
        rows = self.store.item_rows(task_id)
        if status.get("kind") != "task":
            return [row["result"] if row["status"] == "completed" else None for row in rows]
        if not rows or rows[0]["status"] != "completed":
            reason = (rows[0].get("error") if rows else None) or status.get("error") or status["status"]
            raise TaskFailedError(f"task {task_id} failed: {reason}")
        return rows[0]["result"]

    def item_rows(self, job_id: str, status: str | None = None) -> list[dict]:
        """Stored item rows, in input order."""
        return self.store.item_rows(job_id, status=status)

    def store_health(self) -> StoreHealth:
        """Whether results reach the store now (the page shows the message when not)."""
        return self._writer.health()

    @property
    def store_available(self) -> bool:
        return self._writer.health().available

    def cancel(self, job_id: str) -> bool:
        live = self._live.get(job_id)
        if live is not None and live.job is not None:
            live.job.cancel()
            return True
        record = self.store.get_job(job_id)
        if record is None or record["status"] not in ACTIVE:
            return False
        # Runs on another server (or nowhere): its heartbeat sees the job is no longer running and stops it.
        self.store.cancel_pending(job_id, "the job was cancelled")
        self.store.finish_job(job_id, "cancelled")
        return True

    def tune_job(self, job_id: str, max_workers: int | None = None, chunk_size: int | None = None) -> None:
        """Set a job's own workers and chunk size (None keeps one): kept with the job and applied to its live run."""
        record = self.store.get_job(job_id)
        if record is None:
            return
        params = dict(record.get("params") or {})
        execution = dict(params.get("_exec") or {})
        if max_workers is not None:
            execution["max_workers"] = max_workers
        if chunk_size is not None:
            execution["chunk_size"] = chunk_size
        self.store.update_job(job_id, params=params | {"_exec": execution})
        live = self._live.get(job_id)
        if live is not None and live.job is not None:
            self.manager.tune_job(job_id, max_workers=max_workers, chunk_size=chunk_size)

    def wait(self, job_id: str, timeout: float | None = None) -> dict | None:
        """Block until the job is finished (for tests and scripts; pages poll instead)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._ended:
                seen = self._ended_count
            status = self.get_status(job_id)
            if status is None or status["status"] not in ACTIVE:
                return status
            pause = 0.5 if job_id in self._live else 0.05  # a job running here wakes us when it ends
            if deadline is not None:
                pause = min(pause, deadline - time.monotonic())
                if pause <= 0:
                    return status
            with self._ended:
                if self._ended_count == seen:
                    self._ended.wait(pause)

    def jobs_for(self, owner: str | None, kind: str | None = None, limit: int = 20) -> list[dict]:
        return self.store.list_jobs(owner=owner, kind=kind, limit=limit)

    def _release_dead_local_leases(self) -> None:
        """A server on this machine that died (its pid is gone) cannot renew: free its leases now, not at expiry."""
        host = socket.gethostname()
        for record in self.store.list_jobs(statuses=list(ACTIVE), limit=1000):
            owner = record.get("lease_owner") or ""
            parts = owner.split(":")
            if owner == self.server_id or len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
                continue
            if not _pid_alive(int(parts[1])):
                self.store.release_lease(record["id"], owner)

    def resume_incomplete(self) -> list[str]:
        """Run jobs that no server runs: active ones, and any job left with pending items; finished items are kept."""
        resumed = []
        self._release_dead_local_leases()
        with self._lock:
            for record in self.store.claim_orphans(self.server_id, self.lease_s, limit=CLAIM_BATCH):
                if record["id"] not in self._live:
                    if record["status"] not in ACTIVE:
                        record = {**record, "status": "running"}
                    self._start_locked(record)
                    if record["id"] in self._live:
                        resumed.append(record["id"])
        return resumed

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every buffered result is stored."""
        return self._writer.flush(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the heartbeat and store what is buffered (jobs still running resume elsewhere after their lease)."""
        self._closed.set()
        self._beat_now.set()
        self._writer.stop(timeout)


def open_task_queue(manager: ThreadingManager, store: Any, resume: bool = True, *, lease_s: float = DEFAULT_LEASE_S,
                    buffer_rows: int = DEFAULT_BUFFER_ROWS, server_id: str | None = None) -> AsyncTaskQueue:
    """The queue over the shared manager and store; resumes unfinished jobs at start (and takes over
    jobs whose server stopped renewing their lease, when resume is on)."""
    queue = AsyncTaskQueue(manager, store, lease_s=lease_s, buffer_rows=buffer_rows, server_id=server_id,
                           takeover=resume)
    if resume:
        queue.resume_incomplete()
    return queue

