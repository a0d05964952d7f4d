"""The Validation page's batch flow: a sheet becomes a durable job, its results a table, duplicates, merges.

Why: the page only lays out widgets. Everything it shows comes from here, and
everything here reads the store, so a reload (or another server) sees the same
job: the records needed later (duplicates, the cleaned file, history) are the
job's stored inputs, not session state.

Flow: `prepare_records(df, mapping)` → `start_validation(services, owner,
records, options)` (one item per record, checked by `check_record` in worker
processes) → `running_counts` while it runs → `results_frame` /
`cleaned_frame` / `problems_frame` when done. `duplicates_for` compares the
job's records with each other and with history; accepted merges are stored
per job (`save_merges`). `start_geocoding` is the optional second step on
threads with the shared rate limiter, cached in the store.
"""
from __future__ import annotations

import functools
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

import pandas as pd

from streamlit_app.validation import charts
from streamlit_app.validation.charts import Chart
from streamlit_app.validation.duplicates import DEFAULT_THRESHOLD, cluster_pairs, find_duplicates
from streamlit_app.validation.export import problems_report
from streamlit_app.validation.record_check import validate_record
from streamlit_app.validation.records import ROLES, normalise_records
from utils.redact import redact
from utils.task_registry import task

if TYPE_CHECKING:  # workers import this module for check_record: keep the store out of them
    from utils.services import Services

log = logging.getLogger(__name__)
KIND = "validation"
CHECK_FN = "validation.check_record"  # the registered task (the old import path is its alias)
GEOCODE_LIMITER = "google_geocoding"
GEOCODE_NAMESPACE = "geocode"
MERGES_NAMESPACE = "validation_merges"
HISTORY_NAMESPACE = "validation_history"
SHEET_KEY = "sheet"  # the record's original cells, column by column
FIELD_LABELS = {"name": "Name", "phone": "Phone", "email": "E-mail", "address": "Address", "dob": "Date of birth"}
RESULT_COLUMNS = (
    "status", "problems",
    "phone_status", "phone_reason", "phone_e164", "phone_type", "phone_region", "phone_carrier", "phone_location",
    "email_status", "email_reason", "email_normalized",
    "address_status", "address_reason", "address_normalized",
)
NORMALIZED_COLUMNS = ("phone_e164", "email_normalized", "address_normalized")
VALIDATE_OPTIONS = ("default_region", "phone_details", "fields")


# --------------------------------------------------------------------------- the worker entry

@task(CHECK_FN)
def check_record(item: dict, params: dict) -> dict:
    """Worker entry (fn(item, params)): validate one stored record with the job's options."""
    record = {key: value for key, value in item.items() if key != SHEET_KEY}
    return validate_record(record, params.get("options") or {})


# --------------------------------------------------------------------------- starting a run

def prepare_records(df: pd.DataFrame, mapping: dict[str, str | None]) -> list[dict]:
    """One record per sheet row: the role fields, its row number, and its original cells (for the cleaned file)."""
    records = normalise_records(df, mapping)
    columns = [str(c) for c in df.columns]
    # Column by column: a whole column to a list is one call, row tuples of pandas' string columns are not.
    cells = [df.iloc[:, position].tolist() for position in range(len(columns))]
    for record, values in zip(records, zip(*cells) if cells else (() for _ in records)):
        record[SHEET_KEY] = {column: value if type(value) is str else _text(value)
                             for column, value in zip(columns, values)}
    return records


def start_validation(services: Services, owner: str, records: Sequence[dict], options: dict | None = None) -> str:
    """Store the records as a durable job checked in worker processes; returns the job id (same batch, same id).

    options: default_region, phone_details, fields (passed to validate_record),
    source (the file name), mapping (role → column), columns (the sheet's columns).
    """
    if not records:
        raise ValueError("there are no records to validate")
    options = dict(options or {})
    validate = {key: options[key] for key in VALIDATE_OPTIONS if options.get(key) is not None}
    validate.setdefault("default_region", services.settings.default_region)
    mapping = options.get("mapping") or _mapping_from_records(records)
    columns = options.get("columns") or list((records[0].get(SHEET_KEY) or {}).keys())
    params = {"options": validate, "source": str(options.get("source") or "upload"),
              "mapping": {role: mapping.get(role) for role in ROLES}, "columns": [str(c) for c in columns]}
    return services.queue.submit_batch(CHECK_FN, list(records), owner=owner, kind=KIND, params=params,
                                       exec_kind="process", pool="cpu")


def _mapping_from_records(records: Sequence[dict]) -> dict[str, str | None]:
    return {role: role if any(str(r.get(role) or "").strip() for r in records) else None for role in ROLES}


def warm_workers(services: Services) -> None:
    """Start the cpu pool's processes and check one record in each (imports, phone metadata) while the person
    picks a file: the first run then starts on warm workers."""
    from streamlit_app.warm_workers import warm_pool_workers

    warm_pool_workers(services.manager, "cpu", _warm_checker, "warm validation workers")


_WARM_RECORD = {"name": "Ann Lee", "phone": "(415) 555-0100", "email": "ann.lee@example.com",
                "street": "1 Market St", "city": "San Francisco", "state": "CA", "zip": "94105", "row": 2}


def _warm_checker(worker: int) -> int:
    """In a worker process: import the checkers and check one made-up record."""
    from streamlit_app.warm_workers import pause_for_handout

    check_record(dict(_WARM_RECORD), {"options": {"default_region": "US"}})
    pause_for_handout()
    return worker


def job_info(services: Services, job_id: str) -> dict:
    """The job's source name, mapping, columns, options and counts (empty dict if it is gone)."""
    record = services.store.get_job(job_id)
    if record is None:
        return {}
    params = record.get("params") or {}
    return {"source": params.get("source", ""), "mapping": params.get("mapping") or {},
            "columns": params.get("columns") or [], "options": params.get("options") or {},
            "status": record["status"], "total": record["total"], "created_at": record.get("created_at")}


# --------------------------------------------------------------------------- reading results

def running_counts(services: Services, job_id: str) -> dict[str, int]:
    """Valid, invalid, failed and pending records so far (read from the store while the job runs).

    Polled every second or so: a finished job's counts are read once; a running job's are kept by the job's
    _StreamedRows, which each poll extends with the rows finished since, not by reading every row again.
    """
    from streamlit_app.job_cache import CACHE, record_version, store_key

    store = services.store
    record = store.get_job(job_id)
    if record is None:
        return {"valid": 0, "invalid": 0, "pending": 0, "failed": 0}
    version = record_version(record)
    tables = CACHE.built((store_key(store), job_id, FINISHED_TABLES), version) if _is_finished(version) else None
    if tables is not None:
        return dict(tables.counts)
    # Running, or finished with its tables still being built (100,000 rows: seconds): the tally the polls kept,
    # moved on by the verdicts finished since. The job record's counters: done counts failed and cancelled too.
    done, failed = record.get("done") or 0, record.get("failed") or 0
    valid, invalid = _streamed_rows(services, job_id).update(store, job_id, version) if done > failed else (0, 0)
    return {"valid": valid, "invalid": invalid, "pending": max(0, record["total"] - done), "failed": failed}


@dataclass(frozen=True)
class _FinishedTables:
    """What the page shows of a finished run, built in one pass over its item rows; the rows are not kept.

    Why not keep the rows: at 100,000 records they are some 450,000 parsed dicts and lists, held as long as the
    job cache holds them, and every full garbage collection walked them all (about 2 s, inside whichever
    visitor's rerun it fell). These tables hold the same text in column arrays the collector does not walk.
    """

    results: pd.DataFrame
    counts: dict[str, int]
    problems: pd.DataFrame
    records: pd.DataFrame  # the role fields by sheet row (`_records_frame`): duplicates and side-by-side views
    charts: tuple[Chart, Chart]  # records by verdict, most common problems: counted here, not in a visitor's rerun


FINISHED_TABLES = "finished_tables"  # their name in the job cache


def _finished_tables(services: Services, job_id: str, version: Any) -> _FinishedTables:
    from streamlit_app.job_cache import cached

    return cached(services.store, job_id, FINISHED_TABLES, lambda: _build_finished_tables(services, job_id), version)


def finished_tables_ready(services: Services, job_id: str, owner: str) -> Future:
    """Done once the finished run's results, counts and problems are built; a page waits for it without blocking.

    Usually done at once: they are built as the job ends (jobs.JobDoor._prepare_finished_page). A run opened later,
    or a very big one (100,000 rows: some 5 s), is built on a manager thread on the owner's share.
    """
    from streamlit_app.job_cache import CACHE, job_version, store_key

    version = job_version(services.store, job_id)
    if not _is_finished(version):
        running: Future = Future()
        running.set_result(None)  # nothing to wait for: a running job's table streams
        return running
    return CACHE.get_async((store_key(services.store), job_id, FINISHED_TABLES), version,
                           lambda: _build_finished_tables(services, job_id),
                           lambda build: services.manager.submit_task(build, task_name="prepare finished job",
                                                                      pool="analytics", owner=owner))


ROWS_PAGE = 5_000  # item rows parsed at a time while a finished run's tables are built


def _pages_of_rows(store: Any, job_id: str) -> Iterator[list[dict]]:
    """The job's item rows in order, a page at a time.

    Why pages: each page's parsed dicts (and its table lines) are gone before the next page is read, so the job
    never holds 100,000 parsed rows at once (some 450,000 dicts and lists for the garbage collector to walk)."""
    offset = 0
    while True:
        page = store.item_rows(job_id, limit=ROWS_PAGE, offset=offset)
        if page:
            yield page
        if len(page) < ROWS_PAGE:
            return
        offset += ROWS_PAGE


def _build_finished_tables(services: Services, job_id: str) -> _FinishedTables:
    info = job_info(services, job_id)
    columns = _input_columns(info, []) or _input_columns(info, services.store.item_rows(job_id))  # old jobs: rows
    renamed = _renamed(columns)
    counts = {"valid": 0, "invalid": 0, "failed": 0, "pending": 0}
    lines: list[pd.DataFrame] = []  # a frame per page: a page's line dicts go with it (see _pages_of_rows)
    problems: list[pd.DataFrame] = []
    records: list[pd.DataFrame] = []
    for page in _pages_of_rows(services.store, job_id):
        for row in page:
            if row["status"] == "completed":
                counts["valid" if _verdict(row) == "valid" else "invalid"] += 1
            else:
                counts["failed" if row["status"] in ("failed", "cancelled") else "pending"] += 1
        lines.append(pd.DataFrame([_line(row, columns, renamed) for row in page]))
        found = _problems_from_rows(page)
        if len(found):
            problems.append(found)
        records.append(_records_frame([item.get("input") or {} for item in page]))
    report = pd.concat(problems, ignore_index=True) if problems else _problems_from_rows([])
    results = _frame(pd.concat(lines, ignore_index=True) if lines else pd.DataFrame(), columns)
    return _FinishedTables(results=results, counts=counts,
                           problems=report.sort_values("row", kind="stable", ignore_index=True),
                           records=pd.concat(records) if records else _records_frame([]),
                           charts=(charts.verdict_chart(charts.verdict_counts(results)),
                                   charts.problem_chart(charts.problem_counts(results))))


def _is_finished(version: Any) -> bool:
    return not (isinstance(version, tuple) and version and version[0] == "running")


def _verdict(row: dict) -> str:
    return str((row.get("result") or {}).get("status") or "")


STREAM_ROWS = 200  # a running job's table shows at most this many finished rows (the newest) ...
STREAM_PENDING = 100  # ... and the next rows still waiting: drawn on every poll, so kept small at 100,000 rows


@dataclass
class _StreamedRows:
    """A running job's verdict tally and newest finished table lines, read a little at a time.

    Chunks finish roughly in sheet order, so the records below `prefix_end` are all finished and counted
    once. A poll reads only the verdicts of the items finished above it (the store picks the field out of each
    result: no row is decoded), then moves the prefix on; whole rows are read only for the newest STREAM_ROWS
    finished items, the lines the live table shows. At 100,000 rows a poll so costs about the same at the
    end of the run as at its start.
    """

    columns: list[str] = field(default_factory=list)  # the sheet's columns, as the table shows them
    prefix_end: int = 0  # every item with idx below this is finished (completed, failed, cancelled), and counted
    valid: int = 0
    invalid: int = 0
    newest: dict = field(default_factory=dict)  # idx → line of the newest finished items, at most STREAM_ROWS
    version: Any = None  # the job version the last read saw (job_cache.record_version); None: read every time
    tally: tuple[int, int] = (0, 0)  # (valid, invalid) as of that read
    lock: threading.Lock = field(default_factory=threading.Lock)  # guards every field above: sessions poll together

    def update(self, store: Any, job_id: str, version: Any = None) -> tuple[int, int]:
        """Read what finished since the last call (nothing when the job's version is the one last read);
        (valid, invalid) so far."""
        with self.lock:
            if version is not None and version == self.version:
                return self.tally
            finished = store.finished_values(job_id, "status", self.prefix_end)  # by idx
            tail_valid = tail_invalid = 0
            for idx, status, verdict in finished:
                valid, invalid = (verdict == "valid", verdict != "valid") if status == "completed" else (False, False)
                if idx == self.prefix_end:  # still contiguous: counted once and for all
                    self.prefix_end += 1
                    self.valid += valid
                    self.invalid += invalid
                else:  # above a gap (a chunk still in flight): counted now, read again next time
                    tail_valid += valid
                    tail_invalid += invalid
            if finished:  # whole rows only for the newest finished items not read before
                first = max(0, finished[-1][0] + 1 - STREAM_ROWS)
                unread = [idx for idx, _, _ in finished if idx >= first and idx not in self.newest]
                if unread:
                    renamed = _renamed(self.columns)
                    rows = store.item_rows(job_id, offset=unread[0], limit=unread[-1] + 1 - unread[0])  # idx 0..n-1
                    self.newest.update((row["idx"], _line(row, self.columns, renamed)) for row in rows
                                       if row["status"] != "pending")
                self.newest = {idx: line for idx, line in sorted(self.newest.items()) if idx >= first}
            self.version = version
            self.tally = (self.valid + tail_valid, self.invalid + tail_invalid)
            return self.tally

    def lines(self) -> list[tuple[int, dict]]:
        """The newest finished lines (at most STREAM_ROWS), in sheet order."""
        with self.lock:
            return list(self.newest.items())


def _streamed_rows(services: Services, job_id: str) -> _StreamedRows:
    from streamlit_app.job_cache import CACHE, store_key

    return CACHE.get((store_key(services.store), job_id, "streamed_rows"), "streamed",
                     lambda: _StreamedRows(columns=_input_columns(job_info(services, job_id), [])))


def results_frame(services: Services, job_id: str) -> pd.DataFrame:
    """One row per record: row, the sheet's columns, status, problems, then status/reason/normalized per field.

    Built once per job version (a finished job: once), so reruns of the page reuse it. While the job runs, the
    table streams: the newest finished rows (at most STREAM_ROWS) and the next rows waiting, status "pending";
    each poll reads only the verdicts finished since the last one, and the rows it shows.
    """
    from streamlit_app.job_cache import job_version

    version = job_version(services.store, job_id)
    if not _is_finished(version):
        return rows_so_far(services, job_id, version)
    return _finished_tables(services, job_id, version).results


def finished_charts(services: Services, job_id: str) -> tuple[Chart, Chart]:
    """A finished run's two charts (records by verdict, most common problems), built with its tables."""
    from streamlit_app.job_cache import job_version

    return _finished_tables(services, job_id, job_version(services.store, job_id)).charts


def rows_so_far(services: Services, job_id: str, version: Any = None) -> pd.DataFrame:
    """The streamed table of a run the page saw running: the newest finished rows next to the next ones waiting.

    Never waits for the finished tables: a poll that saw the run running may reach here just after it ended,
    and at 100,000 rows those take seconds to build (the page asks for them once it has seen the end).
    """
    from streamlit_app.job_cache import cached, job_version

    version = job_version(services.store, job_id) if version is None else version
    return cached(services.store, job_id, "streamed_results", lambda: _streamed_frame(services, job_id, version),
                  version)


def _streamed_frame(services: Services, job_id: str, version: Any = None) -> pd.DataFrame:
    streamed = _streamed_rows(services, job_id)
    streamed.update(services.store, job_id, version)  # running_counts read this version's rows already
    columns, renamed = streamed.columns, _renamed(streamed.columns)
    waiting = [(row["idx"], _line(row, columns, renamed))
               for row in services.store.item_rows(job_id, status="pending", limit=STREAM_PENDING)]
    return _frame([line for _, line in sorted([*streamed.lines(), *waiting], key=lambda pair: pair[0])], columns)


def _renamed(input_columns: list[str]) -> dict[str, str]:
    """A sheet column named like a result column is shown as "input <name>"."""
    return {c: (f"input {c}" if c in RESULT_COLUMNS or c == "row" else c) for c in input_columns}


def _line(item: Mapping[str, Any], input_columns: list[str], renamed: dict[str, str]) -> dict[str, Any]:
    """One table line: the record's row and cells, then its verdict (or pending / failed with the reason)."""
    record = item.get("input") or {}
    result = item.get("result") or {}
    line: dict[str, Any] = {"row": record.get("row", item["idx"] + 2)}
    sheet = record.get(SHEET_KEY)
    for column in input_columns:
        line[renamed[column]] = (sheet or {}).get(column, "") if sheet is not None else record.get(column, "")
    if item["status"] == "completed":
        line.update({k: v for k, v in result.items() if k != "row"})
        line["problems"] = "; ".join(str(p) for p in result.get("problems") or [])
    else:
        line["status"] = "failed" if item["status"] in ("failed", "cancelled") else "pending"
        line["problems"] = _reason(item.get("error")) if line["status"] == "failed" else ""
    return line


def _frame(lines: list[dict] | pd.DataFrame, input_columns: list[str]) -> pd.DataFrame:
    """The results table from its lines (`_line`), or from a frame of them: columns in the page's order."""
    renamed = _renamed(input_columns)
    columns = ["row", *renamed.values(), *RESULT_COLUMNS]
    frame = lines if isinstance(lines, pd.DataFrame) else pd.DataFrame(lines)
    extra = [c for c in frame.columns if c not in columns]
    frame = frame.reindex(columns=[*columns, *extra])
    present = [c for c in RESULT_COLUMNS if c in ("status", "problems") or c in frame and frame[c].notna().any()]
    frame = frame[["row", *renamed.values(), *present, *extra]]
    for column in present:
        if column not in ("status", "problems"):
            frame[column] = frame[column].fillna("")
    return frame


def _input_columns(info: dict, rows: list[dict]) -> list[str]:
    columns = info.get("columns") or []
    if columns:
        return list(columns)
    mapping = info.get("mapping") or {}
    return [role for role in ROLES if mapping.get(role)] or [r for r in ROLES if any((i.get("input") or {}).get(r) for i in rows)]


def _reason(error: str | None) -> str:
    """Why a record could not be checked, as shown and downloaded: secrets masked here, where the tables are built.

    Why here and not when a page reads a table: masking 100,000 rows on each read took 0.2 s of a visitor's rerun.
    """
    if not error:
        return ""
    kind, _, message = error.partition(": ")
    return redact(message if kind in ("ValueError", "Cancelled") and message else error)


def records_frame(services: Services, job_id: str) -> pd.DataFrame:
    """The job's stored records as the duplicate check reads them: role fields, indexed by sheet row, in order."""
    from streamlit_app.job_cache import job_version

    version = job_version(services.store, job_id)
    if _is_finished(version):
        return _finished_tables(services, job_id, version).records
    return _records_frame([item.get("input") or {} for item in services.store.item_rows(job_id)])


def problems_frame(services: Services, job_id: str) -> pd.DataFrame:
    """One line per problem (row, field, problem); a record the worker could not check is one line too."""
    from streamlit_app.job_cache import cached, job_version

    version = job_version(services.store, job_id)
    if _is_finished(version):
        return _finished_tables(services, job_id, version).problems
    return cached(services.store, job_id, "problems", lambda: _problems_from_rows(services.store.item_rows(job_id)),
                  version)


def _problems_from_rows(rows: list[dict]) -> pd.DataFrame:
    results, failed = [], []
    for item in rows:
        if item["status"] == "completed":
            results.append(item.get("result") or {})
        elif item["status"] in ("failed", "cancelled"):
            failed.append({"row": (item.get("input") or {}).get("row"), "field": "record",
                           "problem": _reason(item.get("error")) or item["status"]})
    report = problems_report(results)
    if failed:
        report = pd.concat([report, pd.DataFrame(failed, columns=report.columns)], ignore_index=True)
    return report.sort_values("row", kind="stable", ignore_index=True) if len(report) else report


# --------------------------------------------------------------------------- duplicates

def _records_frame(records: Sequence[dict]) -> pd.DataFrame:
    frame = pd.DataFrame([{role: str(r.get(role) or "") for role in ROLES} for r in records],
                         columns=list(ROLES), dtype=object)
    frame.index = pd.Index([int(r.get("row") or position + 2) for position, r in enumerate(records)], name="row")
    return frame


def _duplicate_mapping(frame: pd.DataFrame) -> dict[str, str | None]:
    """Roles with any value map to their own column (normalise_records filled name from first/last)."""
    return {role: role if (frame[role] != "").any() else None for role in ROLES}


def history_owner(services: Services, owner: str | None) -> str | None:
    """Whose accepted records to compare with: the owner's own, or everyone's with SPINDLE_SHARED_HISTORY=true."""
    return None if services.settings.shared_history else owner


def _job_owner(services: Services, job_id: str) -> str:
    record = services.store.get_job(job_id)
    return record["owner"] if record else ""


def history_frame(services: Services, exclude_job: str | None = None, owner: str | None = None) -> pd.DataFrame:
    """History as a table (id, source, role fields); records a job put there itself are left out for that job.

    With an owner (or an excluded job, whose owner it is), only that owner's history unless it is shared.
    """
    if owner is None and exclude_job:
        owner = _job_owner(services, exclude_job)
    rows = [h for h in services.store.history(owner=history_owner(services, owner))
            if not exclude_job or (h["record"] or {}).get("job_id") != exclude_job]
    frame = pd.DataFrame([{"id": h["id"], **{role: str((h["record"] or {}).get(role) or "") for role in ROLES},
                           "source": h.get("source", "")} for h in rows],
                         columns=["id", *ROLES, "source"], dtype=object)
    return frame


@dataclass(frozen=True)
class DuplicateFindings:
    """A comparison's answer as the page shows it: the pairs, best first, and their groups (`duplicate_groups`)."""

    pairs: pd.DataFrame
    groups: list[dict]
    keys: list[str]  # each pair's `pair_key`, in order: what a merge is saved as


def duplicates_for(services: Services, job_id: str, threshold: float = DEFAULT_THRESHOLD,
                   against_history: bool = True, owner: str | None = None) -> pd.DataFrame:
    """Likely duplicate pairs among the job's records (and against history), best first.

    Columns: left_row, right_row, source (upload/history), per-field scores, score, reasons.
    """
    return duplicates_future(services, job_id, threshold, against_history, owner).result().pairs


def duplicates_future(services: Services, job_id: str, threshold: float = DEFAULT_THRESHOLD,
                      against_history: bool = True, owner: str | None = None) -> Future:
    """`duplicates_for` as a Future of DuplicateFindings, for a page that must not wait in its script.

    A comparison `prefetch_duplicates` started with the job is used when its settings and history still match;
    otherwise one starts on the manager (reading the records may itself wait for the finished tables). The groups
    are built on the manager too, once the pairs are in: 5,000 groups (100,000 rows) took 0.2 s of a visitor's rerun.
    """
    owner = owner if owner is not None else _job_owner(services, job_id)
    with _prefetched_lock:
        findings = _prefetched.pop(_duplicates_key(services, job_id, threshold, against_history, owner), None)
    if findings is not None:
        return findings

    def compare() -> pd.DataFrame:
        return _compare_for_duplicates(services, job_id, records_frame(services, job_id), threshold,
                                       against_history, owner).result()

    return _findings_of(services, job_id, owner,
                        services.manager.submit_task(compare, task_name="validation duplicates", owner=owner))


def _findings_of(services: Services, job_id: str, owner: str, compared: Future) -> Future:
    """DuplicateFindings once `compared` (the pairs) is done: its groups and merge keys are built on the manager
    then, and no thread waits for the comparison meanwhile."""
    def grouped(pairs: pd.DataFrame) -> DuplicateFindings:
        keys = [pair_key(pair) for pair in pairs[["source", "left_row", "right_row"]].to_dict("records")]
        return DuplicateFindings(pairs, duplicate_groups(services, job_id, pairs, owner), keys)

    findings: Future = Future()

    def settle(step: Future) -> None:
        try:
            findings.set_result(step.result())
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the findings
            findings.set_exception(exc)

    def group_when_compared(done: Future) -> None:
        try:
            services.manager.submit_task(grouped, done.result(), task_name="validation duplicate groups",
                                         pool="analytics", owner=owner).add_done_callback(settle)
        except BaseException as exc:  # noqa: BLE001 - the comparison failed: so do the findings
            findings.set_exception(exc)

    compared.add_done_callback(group_when_compared)
    return findings


PREFETCHED_MAX = 32  # comparisons started with a job and not asked for yet (a tab closed meanwhile): oldest dropped
_prefetched: OrderedDict[tuple, Future] = OrderedDict()
_prefetched_lock = threading.Lock()  # guards _prefetched


# Past this many records the comparison is a second or more of Python. In a thread of the server process it held
# the GIL while the job's checks ran: the server handed chunks to the worker processes and took their results late,
# so the workers waited (10,000 rows: the run ended ~0.4 s later, mean of three browser runs; 100,000 rows: polls of
# up to 8 s, and the finished page's first render waited 10 s). So a sheet this big is compared in a worker process
# of the cpu pool, after the checks. Smaller ones stay on a thread: their comparison is over in a few tenths.
COMPARE_IN_PROCESS_RECORDS = 5_000


def prefetch_duplicates(services: Services, job_id: str, records: Sequence[dict], threshold: float = DEFAULT_THRESHOLD,
                        against_history: bool = True, owner: str | None = None) -> None:
    """Start comparing a new job's records for duplicates while the records are being checked.

    Why: the comparison needs only the records (the job's inputs), not the checks' results, so it need not wait
    for the last chunk: the finished page then finds the pairs and their groups ready (10,000 rows: ~1.5 s sooner).
    `records` are the ones the job was started with; `duplicates_for` with the same settings takes the result.
    """
    owner = owner if owner is not None else _job_owner(services, job_id)
    try:
        key = _duplicates_key(services, job_id, threshold, against_history, owner)
        future = _findings_of(services, job_id, owner, _compare_for_duplicates(
            services, job_id, _records_frame(records), threshold, against_history, owner))
    except Exception:  # noqa: BLE001 - only an early start lost: duplicates_for compares when the page asks
        log.warning("job %s: the early duplicate check could not start", job_id, exc_info=True)
        return
    with _prefetched_lock:
        _prefetched[key] = future
        while len(_prefetched) > PREFETCHED_MAX:
            _prefetched.popitem(last=False)


def _duplicates_key(services: Services, job_id: str, threshold: float, against_history: bool, owner: str) -> tuple:
    """What a comparison's answer depends on: the job, the threshold, and the history it was compared with."""
    from streamlit_app.job_cache import store_key

    return (store_key(services.store), job_id, float(threshold), bool(against_history),
            history_version(services, owner) if against_history else None)


def _compare_for_duplicates(services: Services, job_id: str, frame: pd.DataFrame, threshold: float,
                            against_history: bool, owner: str) -> Future:
    """Compare the records (`_records_frame`) with each other and with history, on the manager."""
    if len(frame) < 1:
        empty: Future = Future()
        empty.set_result(pd.DataFrame(columns=["left_row", "right_row", "source", "score", "reasons"]))
        return empty
    history = None
    if against_history:
        past = history_frame(services, exclude_job=job_id, owner=owner)
        if len(past):
            history = past[["id", *[r for r in ROLES if (past[r] != "").any()]]]
    return services.manager.submit_task(find_duplicates, frame, history, float(threshold), _duplicate_mapping(frame),
                                        task_name="validation duplicates",
                                        pool="cpu" if len(frame) > COMPARE_IN_PROCESS_RECORDS else "analytics",
                                        owner=owner)  # on the job owner's share (every job has an owner)


def duplicate_groups(services: Services, job_id: str, pairs: pd.DataFrame, owner: str | None = None) -> list[dict]:
    """What the page shows side by side: each group's records as columns, and its pairs with their scores.

    Upload pairs are joined into clusters (same person across several rows);
    each history match is its own group (the upload row next to the history record).
    Each group's label and source are ready; its "records" and "pairs" tables are built when first looked
    at (a 10,000-row sheet has a thousand groups, and the page shows one).
    """
    if pairs is None or pairs.empty:
        return []
    records = functools.partial(records_frame, services, job_id)  # read when a group is first opened (run ended)
    groups: list[dict] = []
    upload = pairs[pairs["source"] == "upload"]
    clusters = cluster_pairs(pairs)
    cluster_of = {int(row): number for number, cluster in enumerate(clusters) for row in cluster}
    left = upload["left_row"].map(lambda row: cluster_of.get(int(row), -1))
    right = upload["right_row"].map(lambda row: cluster_of.get(int(row), -2))
    inside = upload[left == right]
    numbers = left[left == right]
    positions = inside.groupby(numbers).indices  # cluster number → positions in `inside`
    best_of = inside["score"].groupby(numbers).max().to_dict()  # one pass: not a table per cluster up front
    for number, cluster in enumerate(clusters):
        members = positions.get(number, [])
        groups.append(_LazyGroup(
            label=f"Rows {', '.join(str(r) for r in cluster)} · {'best pair ' if len(members) > 1 else ''}"
                  f"{_percent(best_of.get(number, float('nan')))}", source="upload",
            build={"records": functools.partial(_side_by_side_rows, records, list(cluster)),
                   "pairs": functools.partial(_rows_at, inside, members)}))
    history_pairs = pairs[pairs["source"] == "history"]
    if len(history_pairs):
        whose = history_owner(services, owner if owner is not None else _job_owner(services, job_id))
        past = {int(h["id"]): h for h in services.store.history(owner=whose)}
        for position in range(len(history_pairs)):
            pair = history_pairs.iloc[position]
            old: Mapping[str, Any] = past.get(int(pair["right_row"]), {})
            past_side = {f"history #{pair['right_row']}": old.get("record") or {}}
            groups.append(_LazyGroup(
                label=f"Row {pair['left_row']} ~ history #{pair['right_row']} ({old.get('source', '')}) · "
                      f"{_percent(pair['score'])}", source="history",
                build={"records": functools.partial(_side_by_side_rows, records, [pair["left_row"]], past_side),
                       "pairs": lambda p=position: history_pairs.iloc[[p]].reset_index(drop=True)}))
    return groups


def _rows_at(table: pd.DataFrame, positions: Sequence[int]) -> pd.DataFrame:
    return table.iloc[list(positions)].reset_index(drop=True)


class _LazyGroup(dict):
    """A duplicate group whose tables ("records", "pairs") are built on first access, then kept."""

    def __init__(self, build: dict[str, Any], **ready: Any) -> None:
        super().__init__(**ready)
        self._build = build

    def __missing__(self, key: str) -> Any:
        if key not in self._build:
            raise KeyError(key)
        value = self[key] = self._build[key]()
        return value


GROUP_PAGE = 200  # the duplicate group picker lists this many groups at a time (a 100,000-row sheet has thousands)


def group_positions(labels: Sequence[str], row: int | None = None, page: int = 1) -> list[int]:
    """Which duplicate groups the picker lists: those with sheet row `row` when one is given, else page `page`
    of GROUP_PAGE groups. A label starts with its sheet rows ("Rows 12, 40 · …", "Row 12 ~ history #3 (file) · …")."""
    if row:
        number = re.compile(rf"(?<!\d){int(row)}(?!\d)")
        return [position for position, label in enumerate(labels)
                if number.search(label.split(" · ")[0].split(" ~ ")[0])]
    first = (max(1, page) - 1) * GROUP_PAGE
    return list(range(min(first, len(labels)), min(first + GROUP_PAGE, len(labels))))


def _percent(score: float) -> str:
    """A same-person probability as the label shows it: 99.9 % is not rounded up to a certain 100 %."""
    if score != score:
        return "score unknown"
    return f"{math.floor(float(score) * 10) / 10:.1f} % likely the same person"


def _side_by_side_rows(read_records: Callable[[], pd.DataFrame], rows: Sequence[Any],
                       more: dict[str, dict] | None = None) -> pd.DataFrame:
    """The sheet's rows (role fields from `records_frame`, read now) side by side, then `more` (e.g. a history
    record)."""
    records = read_records()
    sides = {f"row {row}": records.loc[int(row)].to_dict() if int(row) in records.index else {} for row in rows}
    return _side_by_side({**sides, **(more or {})})


def _side_by_side(sides: dict[str, dict]) -> pd.DataFrame:
    return pd.DataFrame({name: _side(record) for name, record in sides.items()}, index=list(FIELD_LABELS.values()))


def _side(record: dict) -> list[str]:
    address = record.get("address") or ", ".join(
        p for p in (record.get("street"), record.get("city"), f"{record.get('state') or ''} {record.get('zip') or ''}".strip()) if p)
    return [str(record.get("name") or f"{record.get('first_name') or ''} {record.get('last_name') or ''}".strip()),
            str(record.get("phone") or ""), str(record.get("email") or ""), str(address or ""), str(record.get("dob") or "")]


def pair_key(pair: dict | pd.Series) -> str:
    """A stable name for one suggested pair: 'upload:12:57' or 'history:12:3'."""
    return f"{pair['source']}:{pair['left_row']}:{pair['right_row']}"


def load_merges(services: Services, job_id: str) -> set[str]:
    """The pair keys the person accepted as the same record (stored per job, so a reload keeps them)."""
    value = services.store.cache_get(MERGES_NAMESPACE, job_id)
    return set(value or [])


def save_merges(services: Services, job_id: str, accepted: Iterable[str]) -> None:
    services.store.cache_put(MERGES_NAMESPACE, job_id, sorted(set(accepted)))


def _merge_plan(accepted: Iterable[str]) -> tuple[dict[int, int], dict[int, list[int]]]:
    """(row → the row it merges into, row → history ids it matches) from accepted pair keys."""
    upload_pairs: list[tuple[int, int]] = []
    history: dict[int, list[int]] = {}
    for key in accepted:
        source, _, rest = key.partition(":")
        left, _, right = rest.partition(":")
        if source == "upload":
            upload_pairs.append((int(left), int(right)))
        elif source == "history":
            history.setdefault(int(left), []).append(int(right))
    clusters = cluster_pairs(pd.DataFrame(upload_pairs, columns=["left_row", "right_row"])) if upload_pairs else []
    into = {row: cluster[0] for cluster in clusters for row in cluster[1:]}
    return into, history


def cleaned_frame(results: pd.DataFrame, accepted: Iterable[str] = ()) -> pd.DataFrame:
    """The file to take home: one row per record kept, sheet columns, status, problems and normalized values.

    Accepted upload merges keep the first row of each cluster, fill its empty
    cells from the rows merged into it and list those rows in merged_rows;
    accepted history matches are noted in history_match.
    """
    keep = [c for c in results.columns if not (c.endswith(("_status", "_reason", "_type", "_region")) and c.split("_")[0] in ("phone", "email", "address"))]
    out = results[keep].copy()
    into, history = _merge_plan(accepted)
    out["merged_rows"] = ""
    out["history_match"] = [", ".join(f"#{h}" for h in sorted(history.get(int(r), []))) for r in out["row"]] \
        if history else ""
    if into:
        position = {int(r): i for i, r in enumerate(out["row"])}
        merged: dict[int, list[int]] = {}
        for row, keeper in into.items():
            merged.setdefault(keeper, []).append(row)
        fill_columns = [c for c in out.columns if c not in ("row", "status", "problems", "merged_rows", "history_match")]
        for keeper, rows in merged.items():
            if keeper not in position:
                continue
            k = position[keeper]
            for row in sorted(rows):
                if row not in position:
                    continue
                r = position[row]
                for column in fill_columns:
                    if _blank(out.iat[k, out.columns.get_loc(column)]) and not _blank(out.iat[r, out.columns.get_loc(column)]):
                        out.iat[k, out.columns.get_loc(column)] = out.iat[r, out.columns.get_loc(column)]
            out.iat[k, out.columns.get_loc("merged_rows")] = ", ".join(str(r) for r in sorted(rows))
        out = out[~out["row"].astype(int).isin(into.keys())]
    return out.reset_index(drop=True)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or str(value).strip() == ""


# --------------------------------------------------------------------------- history

def accept_into_history(services: Services, job_id: str, accepted: Iterable[str] = (), owner: str | None = None) -> int:
    """Add the job's valid records to history (once per job); merged-away rows and known people are left out."""
    if services.store.cache_get(HISTORY_NAMESPACE, job_id):
        return 0
    into, history = _merge_plan(accepted)
    info = job_info(services, job_id)
    records = []
    for item in services.store.item_rows(job_id, status="completed"):
        record, result = item.get("input") or {}, item.get("result") or {}
        row = int(record.get("row") or item["idx"] + 2)
        if result.get("status") != "valid" or row in into or row in history:
            continue
        entry = {role: record.get(role, "") for role in ROLES if record.get(role)}
        entry.update(row=row, job_id=job_id, phone_e164=result.get("phone_e164", ""),
                     email_normalized=result.get("email_normalized", ""))
        records.append(entry)
    source = f"{info.get('source') or 'upload'} (job {job_id})"
    owner = owner if owner is not None else _job_owner(services, job_id)
    added = services.store.add_history(records, source=source, owner=owner) if records else 0
    services.store.cache_put(HISTORY_NAMESPACE, job_id, {"added": added, "at": time.time()})
    return added


def history_accepted(services: Services, job_id: str) -> dict | None:
    """{'added', 'at'} if this job's records were already accepted into history."""
    return services.store.cache_get(HISTORY_NAMESPACE, job_id)


def history_size(services: Services, owner: str | None = None) -> int:
    """How many records duplicates are compared with (the owner's, unless history is shared)."""
    return len(services.store.history(owner=history_owner(services, owner)))


def history_version(services: Services, owner: str | None = None) -> int:
    """The newest history id (0 if none): changes whenever records are added, cheap to read on every rerun."""
    newest = services.store.history(limit=1, owner=history_owner(services, owner))
    return int(newest[0]["id"]) if newest else 0


# --------------------------------------------------------------------------- geocoding (optional second step)

def geocoding_enabled(services: Services) -> bool:
    return bool((services.settings.google_maps_api_key or "").strip())


def address_line(record: dict, result: dict | None = None) -> str:
    """The text to geocode: the offline normalized form if there is one, else the parts as typed."""
    normalized = str((result or {}).get("address_normalized") or "").strip()
    if normalized:
        return normalized
    if str(record.get("address") or "").strip():
        return str(record["address"]).strip()
    tail = f"{record.get('state') or ''} {record.get('zip') or ''}".strip()
    return ", ".join(p for p in (str(record.get("street") or "").strip(), str(record.get("city") or "").strip(), tail) if p)


def addresses_to_geocode(services: Services, job_id: str) -> list[str]:
    """Unique addresses of the job's records, in sheet order."""
    seen: dict[str, None] = {}
    for item in services.store.item_rows(job_id, status="completed"):
        line = address_line(item.get("input") or {}, item.get("result"))
        if line:
            seen.setdefault(line, None)
    return list(seen)


def _geocode_one(address: str, *, store: Any, client: Any, limiter: Any) -> dict:
    """One address: the store's cached answer, else the API (through the shared limiter); definite answers cached."""
    from streamlit_app.validation.geocoding import cache_key, geocode_address

    key = cache_key(address)
    cached = store.cache_get(GEOCODE_NAMESPACE, key)
    if cached is not None:
        return {**cached, "cached": True}
    result = geocode_address(address, client, limiter)
    if result["status"] in ("ok", "not_found"):
        store.cache_put(GEOCODE_NAMESPACE, key, result)
    return {**result, "cached": False}




def geocode_limiter(services: Services):
    """The one geocoding limiter of this manager, shared by every run and every user."""
    return services.manager.rate_limiter(GEOCODE_LIMITER, float(services.settings.geocode_qps))


def start_geocoding(services: Services, job_id: str, owner: str | None = None):
    """Geocode the job's addresses on threads with the shared limiter; returns the manager's Job (poll it)."""
    from streamlit_app.validation.geocoding import make_client

    settings = services.settings
    client = make_client(settings.google_maps_api_key, settings.google_maps_base_url or None)
    limiter = geocode_limiter(services)
    fn = functools.partial(_geocode_one, store=services.store, client=client, limiter=limiter)
    return services.manager.map(fn, addresses_to_geocode(services, job_id), kind="thread", pool="default",
                                owner=owner, name="geocode")


def geocode_frame(services: Services, job_id: str, job_results: Sequence[Any] | None = None) -> pd.DataFrame:
    """Per record: the address sent and what came back (from the store's cache; failures from the job's results)."""
    from streamlit_app.validation.geocoding import cache_key

    failed: dict[str, dict] = {}
    for value in job_results or ():
        if isinstance(value, dict) and value.get("status") == "failed":
            failed[cache_key(value.get("address", ""))] = value
    lines, answers = [], {}
    for item in services.store.item_rows(job_id, status="completed"):
        record = item.get("input") or {}
        line = address_line(record, item.get("result"))
        if not line:
            continue
        key = cache_key(line)
        if key not in answers:
            answers[key] = services.store.cache_get(GEOCODE_NAMESPACE, key) or failed.get(key)
        answer = answers[key] or {}
        lines.append({"row": record.get("row"), "address": line,
                      "geocode_status": answer.get("status", "not geocoded"), "reason": answer.get("reason", ""),
                      "formatted_address": answer.get("formatted_address", ""), "lat": answer.get("lat"),
                      "lng": answer.get("lng"), "location_type": answer.get("location_type", ""),
                      "partial_match": bool(answer.get("partial_match", False))})
    return pd.DataFrame(lines, columns=["row", "address", "geocode_status", "reason", "formatted_address", "lat", "lng",
                                        "location_type", "partial_match"])


# --------------------------------------------------------------------------- small helpers for the page

def phone_regions() -> list[str]:
    """Two-letter regions phonenumbers knows, for the default-region choice."""
    import phonenumbers

    return sorted(phonenumbers.SUPPORTED_REGIONS)


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)
