"""The one door: every job action a page takes (start, progress, results, downloads, cancel, merges, history,
benchmarks, settings) goes through `JobDoor`, with the caller's Identity.

Why one door: ownership is checked in one function, `_owned`, so no page can forget it.
Another owner's job id answers exactly like a missing one (`JobNotFound`, "no such job"):
a visitor cannot even learn that someone else's job exists. Pages get the door from
`widgets.door()` and never reach the store, the queue or the manager themselves.

Shared pools, personal settings: only an admin retunes a shared pool (`retune_pool`).
Everyone else's workers and chunk size are their own (`set_personal_settings`) and are
applied to the jobs they start, capped at their fair share.
"""
from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from streamlit_app import file_jobs
from streamlit_app.identity import Identity
from streamlit_app.performance import WORKLOADS, simulated_io_call
from streamlit_app.validation import batch, records
from utils.intake import INTAKE_OWNER
from utils.redact import redact

if TYPE_CHECKING:
    from utils.benchmark import BenchmarkRun
    from utils.jobs import Job, JobProgress
    from utils.services import Services
    from utils.store.base import ItemRow, JobRow

TEST_THREADING_ITEMS = 200
FINISHED = ("completed", "failed", "cancelled")  # a job in history: every item stored or failed with a reason


class JobNotFound(LookupError):
    """No job with this id belongs to the caller (missing, or someone else's: the same answer)."""

    def __init__(self, job_id: object) -> None:
        super().__init__("no such job")
        self.job_id = job_id


class NotAllowed(PermissionError):
    """The caller may not do this (retuning the shared pools is for admins)."""


@dataclass(frozen=True)
class PersonalSettings:
    """One visitor's settings for the jobs they start: workers (up to their share) and chunk size (None: auto)."""

    workers: int | None = None  # None: as many as the fair share allows
    chunk_size: int | None = None


@dataclass(frozen=True)
class VisitorsSummary:
    """What a visitor sees of the others: counts only; `rows` (with ids) only for admins."""

    others: int
    jobs: int
    workers: int
    rows: list[dict] | None


class JobDoor:
    """Every job action of every page, for one server's services."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._lock = threading.Lock()  # guards _personal, _tabs and _benchmarks
        self._personal: dict[str, PersonalSettings] = {}
        self._tabs: dict[str, int] = {}
        self._benchmarks: dict[str, BenchmarkRun] = {}
        services.queue.add_finish_listener("pages", self._prepare_finished_page)

    # ------------------------------------------------------------------ the one ownership check
    def _owned(self, who: Identity, job_id: str | None) -> JobRow:
        """The caller's durable job record; anything else (missing, someone else's, malformed) is 'not found'."""
        record = self.services.store.get_job(job_id) if isinstance(job_id, str) and job_id else None
        if record is None or record.get("owner") not in self._owners(who):
            raise JobNotFound(job_id)
        return record

    @staticmethod
    def _owners(who: Identity) -> tuple[str, ...]:
        """Whose jobs the caller acts on: their own; an admin also the queue intake's (they belong to no visitor)."""
        return (who.owner_id, INTAKE_OWNER) if who.is_admin else (who.owner_id,)

    def _owned_live(self, who: Identity, job_id: str | None) -> Job:
        """The caller's job on the manager (geocoding, test runs), by the same rule."""
        job = self.services.manager.job(job_id) if isinstance(job_id, str) and job_id else None
        if job is None or job.owner not in self._owners(who):
            raise JobNotFound(job_id)
        return job

    def owns(self, who: Identity, job_id: str | None) -> bool:
        try:
            self._owned(who, job_id)
        except JobNotFound:
            return False
        return True

    # ------------------------------------------------------------------ presence (fair shares)
    def visitor_arrived(self, who: Identity) -> None:
        """A tab of this visitor opened: their share counts as present."""
        with self._lock:
            self._tabs[who.owner_id] = self._tabs.get(who.owner_id, 0) + 1
        self.services.manager.set_owner_present(who.owner_id, True)

    def visitor_left(self, who: Identity) -> None:
        with self._lock:
            left = self._tabs.get(who.owner_id, 0) - 1
            if left > 0:
                self._tabs[who.owner_id] = left
            else:
                self._tabs.pop(who.owner_id, None)
        self.services.manager.set_owner_present(who.owner_id, False)

    def _prepare_finished_page(self, job_id: str) -> None:
        """On a manager thread, as a job ends: build what its page shows first, while the page's poll is on its way.

        Only for a visitor with a tab open (who will look); the page then finds its tables in the job cache
        (10,000 rows: the finished page's first render some 0.4 s sooner).
        """
        record = self.services.store.get_job(job_id)
        if record is None:
            return
        with self._lock:
            watching = self._tabs.get(record.get("owner") or "", 0) > 0
        if not watching:
            return
        kind = record.get("kind")
        if kind == batch.KIND:
            batch.results_frame(self.services, job_id)  # with its counts and problems: one read of the rows
        elif kind in file_jobs.FILE_KINDS:
            file_jobs.results_frame(self.services, job_id)
            file_jobs.result_details(self.services, job_id)
            if kind == "image":
                file_jobs.near_duplicate_images(self.services, job_id)
            elif kind == "text":
                file_jobs.near_duplicate_text_pairs(self.services, job_id)

    # ------------------------------------------------------------------ settings: personal and shared
    def share_limit(self) -> int:
        """The most workers one visitor's jobs may use at once (their fair share)."""
        return max(1, int(self.services.settings.max_workers_per_user))

    def personal_settings(self, who: Identity) -> PersonalSettings:
        with self._lock:
            return self._personal.get(who.owner_id, PersonalSettings())

    def set_personal_settings(self, who: Identity, workers: int | None, chunk_size: int | None) -> PersonalSettings:
        """The caller's own workers (capped at their share) and chunk size, for the jobs they start next."""
        if workers is not None:
            workers = max(1, min(int(workers), self.share_limit()))
        if chunk_size is not None:
            chunk_size = max(1, int(chunk_size))
        chosen = PersonalSettings(workers, chunk_size)
        with self._lock:
            self._personal[who.owner_id] = chosen
        return chosen

    def pool_names(self) -> list[str]:
        return self.services.manager.pool_names()

    def pool_settings(self, pool: str) -> dict:
        return self.services.manager.pool_settings(pool)

    def retune_pool(self, who: Identity, pool: str, *, workers: int, chunk_size: int | None, parallel: bool) -> None:
        """Admins only: change a shared pool for everyone (live; queued and running work is kept)."""
        if not who.is_admin:
            raise NotAllowed("only an admin can retune the shared pools")
        self.services.manager.configure(pool, workers=workers, chunk_size=chunk_size, parallel=parallel)

    def clear_metrics(self, who: Identity) -> None:
        if not who.is_admin:
            raise NotAllowed("only an admin can clear the shared metrics")
        self.services.manager.reset_metrics()

    def _apply_personal(self, who: Identity, job_id: str) -> None:
        """Give a started durable job the caller's workers and chunk size (kept with the job, so a resume keeps them)."""
        chosen = self.personal_settings(who)
        if chosen.workers is None and chosen.chunk_size is None:
            return
        self._owned(who, job_id)
        self.services.queue.tune_job(job_id, max_workers=chosen.workers, chunk_size=chosen.chunk_size)

    def _map(self, who: Identity, fn: Callable[[Any], Any], items: Iterable[Any], **options: Any) -> Job:
        """A manager job owned by the caller, with their personal workers and chunk size."""
        chosen = self.personal_settings(who)
        options.setdefault("max_workers", chosen.workers)
        options.setdefault("chunk_size", chosen.chunk_size)
        return self.services.manager.map(fn, items, owner=who.owner_id, **options)

    # ------------------------------------------------------------------ durable jobs: any page
    def status(self, who: Identity, job_id: str | None) -> dict | None:
        """Progress of the caller's job (live when it runs here), or None if there is no such job of theirs."""
        try:
            self._owned(who, job_id)
        except JobNotFound:
            return None
        return self.services.queue.get_status(job_id)  # type: ignore[arg-type]

    def cancel(self, who: Identity, job_id: str | None) -> bool:
        """Cancel the caller's job; True if it was running. Someone else's id raises JobNotFound."""
        self._owned(who, job_id)
        return self.services.queue.cancel(job_id)  # type: ignore[arg-type]

    def latest_job(self, who: Identity, kind: str) -> str | None:
        """The caller's newest job of this kind (what a page shows again after a reload)."""
        latest = self.my_jobs(who, kind=kind, limit=1)
        return latest[0]["id"] if latest else None

    def my_jobs(self, who: Identity, kind: str | None = None, limit: int = 20,
                statuses: Sequence[str] | None = None) -> list[JobRow]:
        """The caller's jobs, newest first (history of runs); an admin's include the queue intake's."""
        rows: list[JobRow] = []
        for owner in self._owners(who):
            rows += self.services.store.list_jobs(owner=owner, kind=kind, statuses=statuses, limit=limit)
        if len(rows) > limit or len(self._owners(who)) > 1:
            rows.sort(key=lambda row: row.get("created_at") or 0.0, reverse=True)
        return rows[:limit]

    def item_rows(self, who: Identity, job_id: str, status: str | None = None) -> list[ItemRow]:
        self._owned(who, job_id)
        return self.services.store.item_rows(job_id, status=status)

    def rerun(self, who: Identity, job_id: str) -> str:
        """Run the caller's job again from its stored inputs (same task, options and pool): a new job id."""
        record = self._owned(who, job_id)
        return self._submit_again(who, record, [row.get("input") for row in self.services.store.item_rows(job_id)])

    def _submit_again(self, who: Identity, record: JobRow, inputs: list[Any]) -> str:
        """A new durable job of the caller: the stored job's task, options and pool, on these inputs.

        The caller's personal workers and chunk size win over the stored job's.
        """
        params = dict(record.get("params") or {})
        execution = params.pop("_exec", None) or {}
        chosen = self.personal_settings(who)
        return self.services.queue.submit_batch(
            record["fn"], inputs, owner=who.owner_id, kind=record["kind"], params=params, idem_key=uuid.uuid4().hex,
            pool=execution.get("pool"), exec_kind=execution.get("kind") or "auto",
            chunk_size=chosen.chunk_size or execution.get("chunk_size"), timeout=execution.get("timeout"),
            retries=execution.get("retries") or 0, max_workers=chosen.workers or execution.get("max_workers"))

    # ------------------------------------------------------------------ file pages (audio, image, text)
    def start_files(self, who: Identity, kind: str, files: Sequence[tuple[str, bytes]], analyser: str,
                    options: dict | None = None, exec_kind: str = "auto", pool: str | None = None) -> str:
        job_id = file_jobs.start_file_job(self.services, who.owner_id, kind, files, analyser, options,
                                          exec_kind=exec_kind, pool=pool)
        self._apply_personal(who, job_id)
        return job_id

    def file_results(self, who: Identity, job_id: str) -> pd.DataFrame:
        self._owned(who, job_id)
        return _masked(file_jobs.results_frame(self.services, job_id), "reason")

    def file_details(self, who: Identity, job_id: str) -> dict[str, dict]:
        self._owned(who, job_id)
        return file_jobs.result_details(self.services, job_id)

    def file_bytes(self, who: Identity, job_id: str, name: str) -> bytes | None:
        self._owned(who, job_id)
        return file_jobs.stored_file_bytes(self.services, job_id, name)

    def similar_images(self, who: Identity, job_id: str) -> list[list[dict]]:
        self._owned(who, job_id)
        return file_jobs.near_duplicate_images(self.services, job_id)

    def similar_texts(self, who: Identity, job_id: str) -> pd.DataFrame:
        self._owned(who, job_id)
        return file_jobs.near_duplicate_text_pairs(self.services, job_id)

    # ------------------------------------------------------------------ validation
    def start_sheet_read(self, who: Identity, data: bytes, filename: str, sheet: str | None = None) -> Future:
        """Read an uploaded sheet as the caller's job (in the untrusted pool); the Future carries the SheetRead."""
        return records.start_sheet_read(_OwnerSubmitter(self.services.manager, who.owner_id), data, filename, sheet)

    def warm_sheet_reader(self) -> None:
        records.warm_sheet_reader(self.services.manager)

    def start_validation(self, who: Identity, records: Sequence[dict], options: dict | None = None) -> str:
        job_id = batch.start_validation(self.services, who.owner_id, records, options)
        self._apply_personal(who, job_id)
        return job_id

    def start_validation_in_background(self, who: Identity, sheet: pd.DataFrame, mapping: dict, options: dict,
                                      threshold: float, against_history: bool) -> Future:
        """Prepare, store and start the caller's validation run on a manager thread; the Future carries its job id
        (or the ValueError/KeyError that stopped it).

        Why: a 100,000-row sheet takes ~4 s to prepare and store, and in the page's own run the page froze that
        long. The duplicate check starts as soon as the records are stored (see `prefetch_duplicates`).
        """
        def start() -> str:
            prepared = batch.prepare_records(sheet, mapping)
            job_id = self.start_validation(who, prepared, options)
            self.prefetch_duplicates(who, job_id, prepared, threshold, against_history)
            return job_id

        return self.services.manager.submit_task(start, task_name="start validation", owner=who.owner_id)

    def validation_info(self, who: Identity, job_id: str) -> dict:
        self._owned(who, job_id)
        return batch.job_info(self.services, job_id)

    def validation_counts(self, who: Identity, job_id: str) -> dict[str, int]:
        self._owned(who, job_id)
        return batch.running_counts(self.services, job_id)

    def validation_results(self, who: Identity, job_id: str) -> pd.DataFrame:
        self._owned(who, job_id)
        return batch.results_frame(self.services, job_id)  # reasons masked where built (batch._reason)

    def validation_charts(self, who: Identity, job_id: str) -> tuple[batch.Chart, batch.Chart]:
        """The caller's finished run as two charts (data, Vega-Lite spec): records by verdict, most common problems."""
        self._owned(who, job_id)
        return batch.finished_charts(self.services, job_id)

    def validation_rows_so_far(self, who: Identity, job_id: str) -> pd.DataFrame:
        """The live table of a run the page saw running (see batch.rows_so_far)."""
        self._owned(who, job_id)
        return batch.rows_so_far(self.services, job_id)

    def validation_problems(self, who: Identity, job_id: str) -> pd.DataFrame:
        self._owned(who, job_id)
        return batch.problems_frame(self.services, job_id)

    def compare_duplicates(self, who: Identity, job_id: str, threshold: float, against_history: bool) -> Future:
        """Likely duplicates within the job and against the caller's own history (or the team's, if shared), as a
        Future: the page shows a waiting line instead of blocking its script while a big sheet is compared."""
        self._owned(who, job_id)
        return batch.duplicates_future(self.services, job_id, threshold, against_history, owner=who.owner_id)

    def validation_tables_ready(self, who: Identity, job_id: str) -> Future:
        """Done once the caller's finished run has its results, counts and problems built (see batch)."""
        self._owned(who, job_id)
        return batch.finished_tables_ready(self.services, job_id, who.owner_id)

    def prefetch_duplicates(self, who: Identity, job_id: str, records: Sequence[dict], threshold: float,
                            against_history: bool) -> None:
        """Start the duplicate check of the caller's new job while its records are checked (see batch)."""
        self._owned(who, job_id)
        batch.prefetch_duplicates(self.services, job_id, records, threshold, against_history, owner=who.owner_id)

    def merges(self, who: Identity, job_id: str) -> set[str]:
        self._owned(who, job_id)
        return batch.load_merges(self.services, job_id)

    def save_merges(self, who: Identity, job_id: str, accepted: Iterable[str]) -> None:
        self._owned(who, job_id)
        batch.save_merges(self.services, job_id, accepted)

    def accept_into_history(self, who: Identity, job_id: str, accepted: Iterable[str] = ()) -> int:
        self._owned(who, job_id)
        return batch.accept_into_history(self.services, job_id, accepted, owner=who.owner_id)

    def history_accepted(self, who: Identity, job_id: str) -> dict | None:
        self._owned(who, job_id)
        return batch.history_accepted(self.services, job_id)

    def history_version(self, who: Identity) -> int:
        return batch.history_version(self.services, owner=who.owner_id)

    # ------------------------------------------------------------------ geocoding (a manager job of the caller)
    def geocoding_enabled(self) -> bool:
        return batch.geocoding_enabled(self.services)

    def addresses_to_geocode(self, who: Identity, job_id: str) -> list[str]:
        self._owned(who, job_id)
        return batch.addresses_to_geocode(self.services, job_id)

    def start_geocoding(self, who: Identity, job_id: str) -> str:
        """Geocode the job's addresses; returns the geocoding run's id (poll it with `live_progress`)."""
        self._owned(who, job_id)
        return batch.start_geocoding(self.services, job_id, who.owner_id).id

    def live_progress(self, who: Identity, run_id: str) -> JobProgress:
        """Progress of the caller's manager job (geocoding, test runs)."""
        return self._owned_live(who, run_id).progress()

    def live_finished(self, who: Identity, run_id: str | None) -> bool:
        try:
            return self._owned_live(who, run_id).finished_flag
        except JobNotFound:
            return True

    def geocode_frame(self, who: Identity, job_id: str, run_id: str | None) -> pd.DataFrame:
        self._owned(who, job_id)
        results = None
        if run_id:
            try:
                run = self._owned_live(who, run_id)
            except JobNotFound:
                run = None
            if run is not None and run.finished_flag:
                results = run.result(0)
        return batch.geocode_frame(self.services, job_id, results)

    def cancel_live(self, who: Identity, run_id: str) -> None:
        self._owned_live(who, run_id).cancel()

    # ------------------------------------------------------------------ performance page
    def start_test_threading(self, who: Identity) -> str:
        """200 simulated I/O calls on the default pool, owned by the caller and capped at their share."""
        return self._map(who, simulated_io_call, range(TEST_THREADING_ITEMS), name="test threading",
                         pool="default").id

    def start_benchmark(self, who: Identity, workload_key: str, size: int, worker_counts: Sequence[int]) -> BenchmarkRun:
        """Sequential vs parallel on the caller's share; one benchmark per visitor at a time."""
        from utils.benchmark import BenchmarkRun, run_benchmark

        workload = WORKLOADS[workload_key]
        counts = sorted({max(1, min(int(w), self.share_limit())) for w in worker_counts})
        with self._lock:
            running = self._benchmarks.get(who.owner_id)
            if running is not None and not running.finished:
                raise NotAllowed("your benchmark is still running; wait for it to finish")
            run = BenchmarkRun(1 + len(counts))
            self._benchmarks[who.owner_id] = run
        size = max(1, min(int(size), workload.max_size))
        store = self.services.store

        def drive() -> None:
            try:
                run_benchmark(self.services.manager, workload.fn, workload.make_items(size), workload.label, counts,
                              run=run, record=store.record_run, owner=who.owner_id)
            except Exception:  # noqa: BLE001 - run.error carries the reason to the page
                pass

        # The driver only waits on the manager's jobs (which carry the owner and count against their share),
        # so it runs on its own thread instead of holding one of the owner's worker slots while it waits.
        threading.Thread(target=drive, name=f"benchmark-{who.owner_id[:12]}", daemon=True).start()
        return run

    def benchmark_run(self, who: Identity) -> BenchmarkRun | None:
        with self._lock:
            return self._benchmarks.get(who.owner_id)

    def live_jobs(self, who: Identity) -> list[dict]:
        """Running manager jobs: the caller's own (everyone's for an admin)."""
        jobs = self.services.manager.metrics()["jobs"]
        return [j for j in jobs if who.is_admin or j.get("owner") == who.owner_id]

    def unfinished_jobs(self, who: Identity) -> list[JobRow]:
        """Durable jobs not yet finished: the caller's own (everyone's for an admin)."""
        owner = None if who.is_admin else who.owner_id
        return self.services.store.list_jobs(owner=owner, statuses=["pending", "running"], limit=200)

    def visitors(self, who: Identity) -> VisitorsSummary:
        """The other visitors in aggregate ("3 other visitors, 5 jobs, 12 workers"); ids only for admins."""
        stats = self.services.manager.user_stats()
        with self._lock:
            present = {owner for owner, tabs in self._tabs.items() if tabs > 0}
        others = ({row["user"] for row in stats} | present) - {who.owner_id}
        other_rows = [row for row in stats if row["user"] != who.owner_id]
        return VisitorsSummary(others=len(others), jobs=sum(r["jobs"] for r in other_rows),
                               workers=sum(r["running"] for r in other_rows),
                               rows=stats if who.is_admin else None)

    def metrics(self) -> dict:
        """The shared pools' figures (no owners, no job ids: those come from live_jobs/visitors)."""
        snapshot = dict(self.services.manager.metrics())
        snapshot.pop("jobs", None)
        snapshot.pop("recent_jobs", None)
        return snapshot

    def analytics(self, who: Identity, since: Any, kinds: Sequence[str]) -> tuple[dict, dict, bool]:
        """The Analytics page's (numbers, figures, empty): the caller's own jobs (an admin's: everyone's)."""
        from streamlit_app import analytics

        activity = analytics.load_activity(self.services.store, since, kinds, owner=self._scope(who))
        return (analytics.summary(activity), analytics.build_figures(activity, self.services.manager, who.owner_id),
                activity.empty)

    def analytics_version(self, who: Identity) -> tuple:
        """Changes whenever the caller's data moves on: the Analytics page's cache key."""
        from streamlit_app import analytics

        return analytics.data_version(self.services.store, owner=self._scope(who))

    @staticmethod
    def _scope(who: Identity) -> str | None:
        return None if who.is_admin else who.owner_id

    # ------------------------------------------------------------------ job history (Performance page)
    def _readable(self, who: Identity, job_id: str | None) -> tuple[Job | None, JobRow | None]:
        """The job (its run here and/or its stored record) if the caller may read it: their own, any for an admin."""
        if not isinstance(job_id, str) or not job_id:
            raise JobNotFound(job_id)
        live = self.services.manager.job(job_id)
        record = self.services.store.get_job(job_id)
        owner = live.owner if live is not None else (record["owner"] if record is not None else None)
        if owner is None or not (who.is_admin or owner == who.owner_id):
            raise JobNotFound(job_id)
        return live, record

    def job_history(self, who: Identity, limit: int = 30) -> list[dict]:
        """Finished jobs, newest first: the caller's own (everyone's for an admin), run here or stored.

        Each row: job, name, owner, status, total, done, failed, seconds, slowest [(item, seconds)],
        retryable (failed items a retry would run again), stored (a durable job: its items are kept).
        """
        scope = self._scope(who)
        rows: dict[str, dict] = {}
        for run in self.services.manager.job_history(scope):
            if run.get("status") not in FINISHED:
                continue
            rows[run["job_id"]] = {"job": run["job_id"], "name": run["name"], "owner": run["owner"],
                                   "status": run["status"], "total": run["total"], "done": run["done"],
                                   "failed": run["failed"], "seconds": run.get("elapsed"),
                                   "slowest": [(s["index"], s["seconds"]) for s in run.get("slowest", [])],
                                   "retryable": run.get("retryable", 0), "stored": False}
        for record in self.services.store.list_jobs(owner=scope, statuses=list(FINISHED), limit=limit):
            row = rows.get(record["id"])
            if row is None:
                started, ended = record.get("started_at"), record.get("finished_at")
                row = rows[record["id"]] = {
                    "job": record["id"], "name": record["kind"], "owner": record["owner"],
                    "status": record["status"], "total": record["total"], "done": record["done"],
                    "failed": record["failed"], "seconds": (ended - started) if started and ended else None,
                    "slowest": []}
            row.update(stored=True, retryable=int(record.get("failed") or 0), status=record["status"])
        return list(rows.values())[:limit]

    def job_failures(self, who: Identity, job_id: str) -> list[dict]:
        """The job's failed items: item, error, reason, attempts, traceback (kept; secrets masked).

        Only the job's owner (or an admin) gets here: another visitor's id answers 'not found'.
        """
        live, record = self._readable(who, job_id)
        failures: list[dict] = []
        if live is not None:
            for run in self.services.manager.job_failures(job_id):
                failures.append({"item": run["index"], "error": run["error_type"], "reason": run["message"],
                                 "attempts": run["attempts"], "traceback": run["traceback"]})
        if not failures and record is not None:
            for stored in self.services.store.item_rows(job_id, status="failed"):
                failures.append({"item": stored["idx"], "error": "", "reason": stored.get("error") or "",
                                 "attempts": stored.get("attempts") or 0, "traceback": ""})
        names = {}
        if record is not None:  # a stored item's own name (a file's), when it has one
            names = {row["idx"]: row["input"].get("name") for row in self.services.store.item_rows(job_id, status="failed")
                     if isinstance(row.get("input"), dict) and row["input"].get("name")}
        for row in failures:
            row["name"] = str(names.get(row["item"], ""))
            row["reason"] = redact(str(row["reason"] or ""))
            row["traceback"] = redact(str(row["traceback"] or ""))
        return failures

    def slowest_items(self, who: Identity, job_id: str, count: int = 5) -> list[dict]:
        """The job's slowest items (item, seconds), slowest first: measured here, else as stored."""
        live, record = self._readable(who, job_id)
        if live is not None and live.slowest:
            return [{"item": index, "seconds": seconds} for seconds, index in list(live.slowest)[:count]]
        if record is None:
            return []
        timed = [(row["duration_ms"], row["idx"]) for row in self.services.store.item_rows(job_id)
                 if row.get("duration_ms") is not None]
        timed.sort(reverse=True)
        return [{"item": index, "seconds": float(ms or 0.0) / 1000.0} for ms, index in timed[:count]]

    def retry_failed(self, who: Identity, job_id: str) -> str | None:
        """Run the caller's job again on its failed items only: the new job's id, or None when nothing failed."""
        record = self.services.store.get_job(job_id) if isinstance(job_id, str) and job_id else None
        if record is not None:
            self._owned(who, job_id)
            failed = self.services.store.item_rows(job_id, status="failed")
            return self._submit_again(who, record, [row.get("input") for row in failed]) if failed else None
        self._owned_live(who, job_id)
        again = self.services.manager.retry_failed(job_id, owner=who.owner_id)
        return again.id if again is not None else None

    def cancel_job(self, who: Identity, job_id: str) -> bool:
        """Cancel the caller's running job, durable or not; True if it was running."""
        if isinstance(job_id, str) and job_id and self.services.store.get_job(job_id) is not None:
            return self.cancel(who, job_id)
        job = self._owned_live(who, job_id)
        running = not job.finished_flag
        job.cancel()
        return running

    def worker_times(self, pool: str) -> list[dict]:
        """Each worker thread of a shared pool: busy, idle (waiting for work) and other seconds (no owners)."""
        rows = []
        for row in self.services.manager.worker_stats(pool):
            other = max(0.0, row["age_s"] - row["busy_s"] - row["idle_s"])
            rows.append({"worker": row["worker"], "busy s": row["busy_s"], "waiting for work s": row["idle_s"],
                         "other s": other,
                         "busy share": (row["busy_s"] / row["age_s"]) if row["age_s"] > 0 else 0.0})
        return rows

    def store_problem(self) -> str | None:
        """What to tell every visitor while the store is away (unavailable, disk full); None when it answers."""
        health = self.services.queue.store_health()
        return None if health.available else redact(health.message)


def _masked(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """A failed item's reason can quote a connection error (a storage URL, a key): mask secrets before showing it."""
    if column not in frame.columns or frame.empty:
        return frame
    texts = frame[column]
    masked = texts.map(lambda text: redact(text) if isinstance(text, str) and text else text)
    if masked.equals(texts):
        return frame  # nothing to mask: keep the (cached) frame itself
    out = frame.copy()
    out[column] = masked
    return out


class _OwnerSubmitter:
    """The manager's submit_task with the owner filled in, for helpers that take a task submitter."""

    def __init__(self, manager: Any, owner: str) -> None:
        self._manager = manager
        self._owner = owner

    def submit_task(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        kwargs["owner"] = self._owner
        return self._manager.submit_task(fn, *args, **kwargs)
