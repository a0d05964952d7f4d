"""Durable batch jobs: every job and item lives in the store, so a reload or a restart loses nothing.

A page submits a batch as (function path, inputs, params); the queue writes the job
and its items, runs them on the shared manager, and stores results as each chunk
finishes. Submitting the same batch again returns the same job (Streamlit reruns
scripts on every click). After a restart, unfinished jobs resume from their
pending items, so no item is lost or stored twice.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import json
import logging
import threading
import time
import uuid
from typing import Any, Callable, Sequence

from utils.item_errors import ItemError
from utils.jobs import Job
from utils.threading_manager import ThreadingManager

log = logging.getLogger(__name__)
ACTIVE = ("pending", "running")


def resolve_function(path: str) -> Callable:
    """'package.module:function' to the function; workers import it themselves."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"function path must look like 'package.module:function', not {path!r}")
    return getattr(importlib.import_module(module_name), attr)


def call_item(fn_path: str, params: dict, item: Any) -> Any:
    """What a worker runs for one stored item: fn(item, params)."""
    return resolve_function(fn_path)(item, params)


def call_plain(fn_path: str, item: dict) -> Any:
    return resolve_function(fn_path)(*item.get("args", ()), **item.get("kwargs", {}))


def batch_key(fn_path: str, params: dict, inputs: Sequence[Any]) -> str:
    """Same function, parameters and inputs give the same key, so a resubmit finds the job."""
    digest = hashlib.sha256()
    digest.update(fn_path.encode())
    digest.update(json.dumps(params, sort_keys=True, default=str).encode())
    for item in inputs:
        digest.update(json.dumps(item, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:32]


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


class AsyncTaskQueue:
    def __init__(self, manager: ThreadingManager, store: Any) -> None:
        self.manager = manager
        self.store = store
        self._lock = threading.Lock()
        self._live: dict[str, Job] = {}

    # ------------------------------------------------------------------ submitting
    def submit_batch(self, fn_path: str, inputs: Sequence[Any], *, owner: str, kind: str, params: dict | None = None,
                     idem_key: str | None = None, pool: str | None = None, exec_kind: str = "auto",
                     chunk_size: int | None = None, timeout: float | None = None, retries: int = 0) -> str:
        """Start (or find) the durable job for this batch and return its id at once."""
        resolve_function(fn_path)  # fail now, in the page, if the path is wrong
        params = params or {}
        inputs = [_jsonable(item) for item in inputs]
        key = idem_key or batch_key(fn_path, params, inputs)
        with self._lock:
            existing = self.store.find_job_by_key(owner, key)
            if existing is not None:
                if existing["status"] in ACTIVE and existing["id"] not in self._live:
                    self._start_locked(existing)
                return existing["id"]
            job_id = uuid.uuid4().hex[:16]
            record = {"id": job_id, "owner": owner, "kind": kind, "fn": fn_path,
                      "params": params | {"_exec": {"pool": pool, "kind": exec_kind, "chunk_size": chunk_size,
                                                    "timeout": timeout, "retries": retries}},
                      "status": "pending", "total": len(inputs), "done": 0, "failed": 0, "backend_used": "",
                      "error": "", "created_at": time.time(), "started_at": None, "finished_at": None,
                      "idem_key": key}
            if not self.store.create_job(record):
                found = self.store.find_job_by_key(owner, key)
                return found["id"] if found else job_id
            self.store.add_items(job_id, list(enumerate(inputs)))
            self._start_locked(self.store.get_job(job_id))
            return job_id

    def submit(self, fn: Callable | str, *args: Any, owner: str = "system", **kwargs: Any) -> str:
        """One call as a durable task; its result is read with get_result()."""
        path = fn if isinstance(fn, str) else f"{fn.__module__}:{fn.__qualname__}"
        return self.submit_batch("utils.task_queue:_run_plain", [{"fn": path, "args": list(args), "kwargs": kwargs}],
                                 owner=owner, kind="task", idem_key=uuid.uuid4().hex, exec_kind="thread")

    def _start_locked(self, record: dict) -> None:
        job_id = record["id"]
        pending = self.store.pending_items(job_id)
        counts = self.store.item_counts(job_id)
        params = dict(record.get("params") or {})
        execution = params.pop("_exec", {}) or {}
        if not pending:
            self._finish(job_id, cancelled=False)
            return
        indexes = [idx for idx, _ in pending]
        base_done = sum(n for status, n in counts.items() if status != "pending")
        base_failed = counts.get("failed", 0) + counts.get("cancelled", 0)
        fn = functools.partial(call_item, record["fn"], params)
        self.store.update_job(job_id, status="running", started_at=record.get("started_at") or time.time())

        def persist(job: Job, delivered: list) -> None:
            rows = []
            for position, value, attempts, seconds in delivered:
                row = {"idx": indexes[position], "attempts": attempts, "duration_ms": seconds * 1000.0}
                if isinstance(value, ItemError):
                    cancelled = value.error_type == "Cancelled"
                    row.update(status="cancelled" if cancelled else "failed", result=None,
                               error=f"{value.error_type}: {value.message}")
                else:
                    try:
                        row.update(status="completed", result=_jsonable(value), error=None)
                    except (TypeError, ValueError) as exc:
                        row.update(status="failed", result=None, error=f"result cannot be stored: {exc}")
                rows.append(row)
            self.store.save_results(job_id, rows)
            self.store.update_job(job_id, done=base_done + job.done, failed=base_failed + job.failed,
                                  backend_used=job.backend)

        def done(_results: list) -> None:
            job = self._live.get(job_id)
            self._finish(job_id, cancelled=bool(job and job.cancel_event.is_set()))

        job = self.manager.map(fn, [item for _, item in pending], owner=record["owner"], name=f"{record['kind']}",
                               pool=execution.get("pool"), kind=execution.get("kind") or "auto",
                               chunk_size=execution.get("chunk_size"), timeout=execution.get("timeout"),
                               retries=execution.get("retries") or 0, on_chunk=persist, job_id=job_id)
        job.on_done = done  # type: ignore[attr-defined]
        self._live[job_id] = job
        if job.finished_flag:
            done([])

    def _finish(self, job_id: str, cancelled: bool) -> None:
        counts = self.store.item_counts(job_id)
        if cancelled:
            self.store.cancel_pending(job_id, "the job was cancelled")
            counts = self.store.item_counts(job_id)
        failed = counts.get("failed", 0) + counts.get("cancelled", 0)
        done = sum(n for status, n in counts.items() if status != "pending")
        status = "cancelled" if cancelled else "completed"
        job = self._live.pop(job_id, None)
        fields: dict[str, Any] = {"status": status, "done": done, "failed": failed, "finished_at": time.time()}
        if job is not None:
            fields["backend_used"] = job.backend
            progress = job.progress()
            self._record_run(job, progress)
        self.store.update_job(job_id, **fields)

    def _record_run(self, job: Job, progress: Any) -> None:
        try:
            pool = self.manager.pool_settings(job.pool)
            self.store.record_run({"workload": job.name, "backend": job.backend, "workers": pool["workers"],
                                   "chunk_size": progress.chunk_size or 0, "items": progress.done,
                                   "seconds": progress.elapsed, "source": "job", "created_at": time.time()})
        except Exception:  # noqa: BLE001 - analytics must never break a job
            log.exception("could not record run for job %s", job.id)

    # ------------------------------------------------------------------ reading and control
    def get_status(self, job_id: str) -> dict | None:
        """Live progress when the job runs here; otherwise what the store says."""
        record = self.store.get_job(job_id)
        if record is None:
            return None
        job = self._live.get(job_id)
        status = dict(record)
        status.pop("params", None)
        if job is not None:
            progress = job.progress()
            finished_before = record["total"] - (progress.total or 0)  # items done before a resume
            status.update(status="running", done=max(record.get("done") or 0, finished_before + progress.done),
                          rate=progress.rate, eta=progress.eta, backend_used=progress.backend,
                          backend_reason=progress.backend_reason)
        status["fraction"] = (status["done"] / status["total"]) if status["total"] else 1.0
        return status

    def get_result(self, job_id: str) -> list[dict]:
        """Stored item rows, in input order."""
        return self.store.item_rows(job_id)

    def cancel(self, job_id: str) -> bool:
        job = self._live.get(job_id)
        if job is not None:
            job.cancel()
            return True
        record = self.store.get_job(job_id)
        if record is None or record["status"] not in ACTIVE:
            return False
        self._finish(job_id, cancelled=True)
        return True

    def wait(self, job_id: str, timeout: float | None = None) -> dict | None:
        """Block until the job is finished (for tests and scripts; pages poll instead)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.get_status(job_id)
            if status is None or status["status"] not in ACTIVE:
                return status
            if deadline is not None and time.monotonic() > deadline:
                return status
            time.sleep(0.05)

    def jobs_for(self, owner: str | None, kind: str | None = None, limit: int = 20) -> list[dict]:
        return self.store.list_jobs(owner=owner, kind=kind, limit=limit)

    def resume_incomplete(self) -> list[str]:
        """Restart jobs a previous server left unfinished; finished items are kept."""
        resumed = []
        with self._lock:
            for record in self.store.list_jobs(statuses=list(ACTIVE), limit=1000):
                if record["id"] not in self._live:
                    self._start_locked(record)
                    resumed.append(record["id"])
        return resumed


def _run_plain(item: dict, _params: dict) -> Any:
    return call_plain(item["fn"], item)


def open_task_queue(manager: ThreadingManager, store: Any, resume: bool = True) -> AsyncTaskQueue:
    """The queue over the shared manager and store; resumes unfinished jobs once at start."""
    queue = AsyncTaskQueue(manager, store)
    if resume:
        queue.resume_incomplete()
    return queue
