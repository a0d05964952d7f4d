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
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import pandas as pd

from streamlit_app.validation.duplicates import DEFAULT_THRESHOLD, cluster_pairs, find_duplicates
from streamlit_app.validation.export import problems_report
from streamlit_app.validation.record_check import validate_record
from streamlit_app.validation.records import ROLES, normalise_records
from utils.task_registry import task

if TYPE_CHECKING:  # workers import this module for check_record: keep the store out of them
    from utils.services import Services

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
    for record, values in zip(records, df.itertuples(index=False, name=None)):
        record[SHEET_KEY] = {column: _text(value) for column, value in zip(columns, values)}
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
    """Start the process pool while the person looks at the column mapping (cheap once it runs)."""
    try:
        services.manager.warm("cpu")
    except Exception:  # noqa: BLE001 - a cold pool only makes the first run slower
        pass


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
    from streamlit_app.job_cache import cached, job_version

    store = services.store
    version = job_version(store, job_id)
    if not isinstance(version, tuple) or version[0] == "running":
        counts = store.item_counts(job_id)
        valid, invalid = _streamed_rows(services, job_id).update(store, job_id) if counts.get("completed", 0) \
            else (0, 0)
        return {"valid": valid, "invalid": invalid, "pending": counts.get("pending", 0),
                "failed": counts.get("failed", 0) + counts.get("cancelled", 0)}
    def build() -> dict[str, int]:
        _seed_finished_rows(services, job_id, version)
        return _final_counts(store, job_id)

    return cached(store, job_id, "running_counts", build, version)


def _final_counts(store: Any, job_id: str) -> dict[str, int]:
    counts = store.item_counts(job_id)
    out = {"valid": 0, "invalid": 0, "failed": counts.get("failed", 0) + counts.get("cancelled", 0),
           "pending": counts.get("pending", 0)}
    from streamlit_app.job_cache import job_rows

    for row in job_rows(store, job_id):
        if row["status"] == "completed":
            out["valid" if _verdict(row) == "valid" else "invalid"] += 1
    return out


def _verdict(row: dict) -> str:
    return str((row.get("result") or {}).get("status") or "")


STREAM_ROWS = 1_000  # a running job's table shows at most this many finished rows (the newest) ...
STREAM_PENDING = 100  # ... and the next rows still waiting: drawn on every poll, so kept small at 100,000 rows


@dataclass
class _StreamedRows:
    """A running job's verdict tally and newest finished table lines, read a little at a time.

    Chunks finish roughly in sheet order, so the records below `prefix_end` are all finished and counted
    once; a poll reads only the completed rows above it (a chunk or two in flight), then moves the prefix on.
    The last STREAM_ROWS lines of the prefix are kept for the live table; the rows above it are re-read.
    """

    columns: list[str] = field(default_factory=list)  # the sheet's columns, as the table shows them
    prefix_end: int = 0  # every item with idx below this is completed or failed, and counted
    prefix_completed: int = 0  # how many of those completed (the store's offset into completed rows)
    prefix_failed: int = 0  # how many of those failed (the store's offset into failed rows)
    valid: int = 0
    invalid: int = 0
    recent: deque = field(default_factory=lambda: deque(maxlen=STREAM_ROWS))  # (idx, line) of the prefix's newest
    tail: list = field(default_factory=list)  # (idx, line) finished above the prefix, as of the last update
    rows: list = field(default_factory=list)  # the prefix's item rows, as read: the finished job's rows, unread again
    lock: threading.Lock = field(default_factory=threading.Lock)  # guards every field above: sessions poll together

    def update(self, store: Any, job_id: str) -> tuple[int, int]:
        """Read the rows finished since the last call; (valid, invalid) so far."""
        renamed = _renamed(self.columns)
        with self.lock:
            tail = store.item_rows(job_id, status="completed", offset=self.prefix_completed)
            failed = store.item_rows(job_id, status="failed", offset=self.prefix_failed)
            finished = {row["idx"]: row for row in (*tail, *failed)}
            while self.prefix_end in finished:
                row = finished.pop(self.prefix_end)
                if row["status"] == "completed":
                    self.prefix_completed += 1
                    self.valid += _verdict(row) == "valid"
                    self.invalid += _verdict(row) != "valid"
                else:
                    self.prefix_failed += 1
                self.recent.append((row["idx"], _line(row, self.columns, renamed)))
                self.rows.append(row)
                self.prefix_end += 1
            self.tail = [(idx, _line(row, self.columns, renamed)) for idx, row in sorted(finished.items())]
            verdicts = [_verdict(row) for row in finished.values() if row["status"] == "completed"]
            tail_valid = sum(1 for verdict in verdicts if verdict == "valid")
            return self.valid + tail_valid, self.invalid + len(verdicts) - tail_valid

    def lines(self) -> list[tuple[int, dict]]:
        """The newest finished lines (at most STREAM_ROWS), in sheet order."""
        with self.lock:
            return [*self.recent, *self.tail][-STREAM_ROWS:]


def _seed_finished_rows(services: Services, job_id: str, version: Any) -> None:
    """A job this server watched run already has its rows: read only the last ones, not all of them again."""
    from streamlit_app.job_cache import CACHE, cached, store_key

    streamed = CACHE.peek((store_key(services.store), job_id, "streamed_rows"))
    record = services.store.get_job(job_id)
    if streamed is None or record is None:
        return
    streamed.update(services.store, job_id)
    with streamed.lock:
        if streamed.prefix_end != record["total"] or streamed.tail:
            return  # an item was cancelled, or rows are missing: the full read stays
        rows = list(streamed.rows)
    cached(services.store, job_id, "item_rows", lambda: rows, version)


def _streamed_rows(services: Services, job_id: str) -> _StreamedRows:
    from streamlit_app.job_cache import CACHE, store_key

    return CACHE.get((store_key(services.store), job_id, "streamed_rows"), "streamed",
                     lambda: _StreamedRows(columns=_input_columns(job_info(services, job_id), [])))


def results_frame(services: Services, job_id: str) -> pd.DataFrame:
    """One row per record: row, the sheet's columns, status, problems, then status/reason/normalized per field.

    Built once per job version (a finished job: once), so reruns of the page reuse it. While the job runs, the
    table streams: the newest finished rows (at most STREAM_ROWS) and the next rows waiting, status "pending";
    each poll reads only the rows finished since the last one.
    """
    from streamlit_app.job_cache import cached, job_version

    version = job_version(services.store, job_id)
    if isinstance(version, tuple) and version[0] == "running":
        return cached(services.store, job_id, "streamed_results", lambda: _streamed_frame(services, job_id), version)

    def build() -> pd.DataFrame:
        _seed_finished_rows(services, job_id, version)
        return _results_frame(services, job_id)

    return cached(services.store, job_id, "results", build, version)


def _streamed_frame(services: Services, job_id: str) -> pd.DataFrame:
    streamed = _streamed_rows(services, job_id)
    streamed.update(services.store, job_id)
    columns, renamed = streamed.columns, _renamed(streamed.columns)
    waiting = [(row["idx"], _line(row, columns, renamed))
               for row in services.store.item_rows(job_id, status="pending", limit=STREAM_PENDING)]
    return _frame([line for _, line in sorted([*streamed.lines(), *waiting], key=lambda pair: pair[0])], columns)


def _results_frame(services: Services, job_id: str) -> pd.DataFrame:
    from streamlit_app.job_cache import job_rows

    info = job_info(services, job_id)
    rows = job_rows(services.store, job_id)
    columns = _input_columns(info, rows)
    renamed = _renamed(columns)
    return _frame([_line(item, columns, renamed) for item in rows], columns)


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


def _frame(lines: list[dict], input_columns: list[str]) -> pd.DataFrame:
    renamed = _renamed(input_columns)
    columns = ["row", *renamed.values(), *RESULT_COLUMNS]
    frame = pd.DataFrame(lines)
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
    if not error:
        return ""
    kind, _, message = error.partition(": ")
    return message if kind in ("ValueError", "Cancelled") and message else error


def records_for(services: Services, job_id: str) -> list[dict]:
    """The job's stored records (role fields, row, original cells), in sheet order."""
    from streamlit_app.job_cache import job_rows

    return [item.get("input") or {} for item in job_rows(services.store, job_id)]


def problems_frame(services: Services, job_id: str) -> pd.DataFrame:
    """One line per problem (row, field, problem); a record the worker could not check is one line too."""
    from streamlit_app.job_cache import cached

    return cached(services.store, job_id, "problems", lambda: _problems_frame(services, job_id))


def _problems_frame(services: Services, job_id: str) -> pd.DataFrame:
    from streamlit_app.job_cache import job_rows

    results, failed = [], []
    for item in job_rows(services.store, job_id):
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


def duplicates_for(services: Services, job_id: str, threshold: float = DEFAULT_THRESHOLD,
                   against_history: bool = True, owner: str | None = None) -> pd.DataFrame:
    """Likely duplicate pairs among the job's records (and against history), best first, on the analytics pool.

    Columns: left_row, right_row, source (upload/history), per-field scores, score, reasons.
    """
    records = records_for(services, job_id)
    if len(records) < 1:
        return pd.DataFrame(columns=["left_row", "right_row", "source", "score", "reasons"])
    frame = _records_frame(records)
    history = None
    if against_history:
        past = history_frame(services, exclude_job=job_id, owner=owner)
        if len(past):
            history = past[["id", *[r for r in ROLES if (past[r] != "").any()]]]
    future = services.manager.submit_task(find_duplicates, frame, history, float(threshold),
                                          _duplicate_mapping(frame), task_name="validation duplicates",
                                          pool="analytics",  # on the job owner's share (every job has an owner)
                                          owner=owner if owner is not None else _job_owner(services, job_id))
    return future.result()


def duplicate_groups(services: Services, job_id: str, pairs: pd.DataFrame, owner: str | None = None) -> list[dict]:
    """What the page shows side by side: each group's records as columns, and its pairs with their scores.

    Upload pairs are joined into clusters (same person across several rows);
    each history match is its own group (the upload row next to the history record).
    Each group's label and source are ready; its "records" and "pairs" tables are built when first looked
    at (a 10,000-row sheet has a thousand groups, and the page shows one).
    """
    if pairs is None or pairs.empty:
        return []
    by_row = {int(r.get("row") or 0): r for r in records_for(services, job_id)}
    groups: list[dict] = []
    upload = pairs[pairs["source"] == "upload"]
    clusters = cluster_pairs(pairs)
    cluster_of = {int(row): number for number, cluster in enumerate(clusters) for row in cluster}
    left = upload["left_row"].map(lambda row: cluster_of.get(int(row), -1))
    right = upload["right_row"].map(lambda row: cluster_of.get(int(row), -2))
    inside = upload[left == right]
    positions = inside.groupby(left[left == right]).indices  # cluster number → positions in `inside`
    for number, cluster in enumerate(clusters):
        members = inside.iloc[positions.get(number, [])]
        best = members["score"].max() if len(members) else float("nan")
        groups.append(_LazyGroup(
            label=f"Rows {', '.join(str(r) for r in cluster)} · {'best pair ' if len(members) > 1 else ''}"
                  f"{_percent(best)}", source="upload",
            build={"records": functools.partial(_side_by_side, {f"row {row}": by_row.get(int(row), {}) for row in cluster}),
                   "pairs": functools.partial(members.reset_index, drop=True)}))
    history_pairs = pairs[pairs["source"] == "history"]
    if len(history_pairs):
        whose = history_owner(services, owner if owner is not None else _job_owner(services, job_id))
        past = {int(h["id"]): h for h in services.store.history(owner=whose)}
        for position in range(len(history_pairs)):
            pair = history_pairs.iloc[position]
            old: Mapping[str, Any] = past.get(int(pair["right_row"]), {})
            sides = {f"row {pair['left_row']}": by_row.get(int(pair["left_row"]), {}),
                     f"history #{pair['right_row']}": old.get("record") or {}}
            groups.append(_LazyGroup(
                label=f"Row {pair['left_row']} ~ history #{pair['right_row']} ({old.get('source', '')}) · "
                      f"{_percent(pair['score'])}", source="history",
                build={"records": functools.partial(_side_by_side, sides),
                       "pairs": lambda p=position: history_pairs.iloc[[p]].reset_index(drop=True)}))
    return groups


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


def _percent(score: float) -> str:
    """A same-person probability as the label shows it: 99.9 % is not rounded up to a certain 100 %."""
    if score != score:
        return "score unknown"
    return f"{math.floor(float(score) * 10) / 10:.1f} % likely the same person"


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
    out["history_match"] = [", ".join(f"#{h}" for h in sorted(history.get(int(r), []))) for r in out["row"]]
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
