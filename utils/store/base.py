"""The Store interface every backend implements, the row rules they share, and the schema.

The lead's task queue codes against `Store` only, so SQLite (one machine),
PostgreSQL (shared server) and Supabase (hosted) are interchangeable. Rows are
plain dicts; timestamps are float epoch seconds; JSON columns hold any JSON
value. The schema is created and migrated by the project: MIGRATIONS holds an
ordered list of SQL steps per dialect and `schema_version` records how many ran.
"""
from __future__ import annotations

import datetime
import json
import math
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from contextlib import contextmanager
from typing import Any, Callable, Generic, Iterable, Iterator, Mapping, Sequence, TypedDict, TypeVar

import orjson

JOB_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
ITEM_STATUSES = ("pending", "completed", "failed", "cancelled")
RUN_SOURCES = ("job", "benchmark")

JOB_COLUMNS = (
    "id", "owner", "kind", "fn", "params", "status", "total", "done", "failed",
    "backend_used", "error", "created_at", "started_at", "finished_at", "idem_key", "lease_owner", "lease_expires",
)
ITEM_COLUMNS = ("job_id", "idx", "input", "status", "attempts", "result", "error", "duration_ms", "updated_at")
RESULT_COLUMNS = ("job_id", "idx", "status", "attempts", "result", "error", "duration_ms", "updated_at")
FILE_COLUMNS = ("id", "owner", "name", "size", "sha256", "path", "storage", "created_at")
RUN_COLUMNS = ("workload", "backend", "workers", "chunk_size", "items", "seconds", "source", "created_at")
HISTORY_COLUMNS = ("record", "source", "created_at", "owner")
JSON_COLUMNS = {"jobs": {"params"}, "items": {"input", "result"}, "history": {"record"}, "cache": {"value"}}
# Tables db_ops.batch_insert may write to, with their columns (a whitelist: names go into SQL).
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "jobs": JOB_COLUMNS,
    "items": ITEM_COLUMNS,
    "history": HISTORY_COLUMNS,
    "files": FILE_COLUMNS,
    "cache": ("namespace", "key", "value", "updated_at"),
    "runs": RUN_COLUMNS,
}

class JobRow(TypedDict):
    """A jobs row as every backend returns it (create_job needs only id and owner)."""

    id: str
    owner: str
    kind: str
    fn: str  # a registered task name (utils/task_registry.py), never imported
    params: Any
    status: str  # one of JOB_STATUSES
    total: int
    done: int
    failed: int
    backend_used: str
    error: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    idem_key: str | None
    lease_owner: str | None  # the server running the job, while its lease holds
    lease_expires: float | None  # epoch seconds; after this another server may take the job over


class ItemRow(TypedDict):
    job_id: str
    idx: int
    input: Any
    status: str  # one of ITEM_STATUSES
    attempts: int
    result: Any
    error: str | None
    duration_ms: float | None
    updated_at: float


class HistoryRow(TypedDict):
    id: int
    record: Any
    source: str
    created_at: float
    owner: str  # whose accepted records these are ('' for rows from before history had owners)


class FileRow(TypedDict):
    id: str
    owner: str
    name: str
    size: int
    sha256: str
    path: str  # relative to data_dir for "local", the object key for "supabase"
    storage: str  # "local" | "supabase"
    created_at: float


class RunRow(TypedDict):
    id: int
    workload: str
    backend: str
    workers: int
    chunk_size: int | None
    items: int
    seconds: float
    source: str  # one of RUN_SOURCES
    created_at: float


_JOB_DEFAULTS: dict[str, Any] = {
    "kind": "", "fn": "", "params": {}, "status": "pending", "total": 0, "done": 0, "failed": 0,
    "backend_used": "", "error": "", "started_at": None, "finished_at": None, "idem_key": None,
    "lease_owner": None, "lease_expires": None,
}

# One list of steps per dialect; append, never edit a released step.
MIGRATIONS: dict[str, list[str]] = {
    "sqlite": [
        """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            kind TEXT NOT NULL DEFAULT '',
            fn TEXT NOT NULL DEFAULT '',
            params TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL DEFAULT 'pending',
            total INTEGER NOT NULL DEFAULT 0,
            done INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            backend_used TEXT NOT NULL DEFAULT '',
            error TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            idem_key TEXT,
            UNIQUE (owner, idem_key)
        );
        CREATE INDEX jobs_owner_created ON jobs (owner, created_at);
        CREATE INDEX jobs_status ON jobs (status);
        CREATE TABLE items (
            job_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            input TEXT,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            result TEXT,
            error TEXT,
            duration_ms REAL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (job_id, idx)
        );
        CREATE INDEX items_job_status ON items (job_id, status, idx);
        CREATE TABLE history (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            record TEXT NOT NULL,
            source TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL
        );
        CREATE TABLE files (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            name TEXT NOT NULL,
            size INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            path TEXT NOT NULL,
            storage TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE TABLE cache (
            namespace TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT,
            updated_at REAL NOT NULL,
            PRIMARY KEY (namespace, key)
        );
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            workload TEXT NOT NULL,
            backend TEXT NOT NULL,
            workers INTEGER NOT NULL,
            chunk_size INTEGER,
            items INTEGER NOT NULL,
            seconds REAL NOT NULL,
            source TEXT NOT NULL DEFAULT 'job',
            created_at REAL NOT NULL
        );
        """,
        # 2: leases (several servers on one store) and history per owner
        """
        ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
        ALTER TABLE jobs ADD COLUMN lease_expires REAL;
        ALTER TABLE history ADD COLUMN owner TEXT NOT NULL DEFAULT '';
        CREATE INDEX history_owner ON history (owner, id);
        """,
    ],
    "postgres": [
        """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            kind TEXT NOT NULL DEFAULT '',
            fn TEXT NOT NULL DEFAULT '',
            params JSONB NOT NULL DEFAULT '{}',
            status TEXT NOT NULL DEFAULT 'pending',
            total INTEGER NOT NULL DEFAULT 0,
            done INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            backend_used TEXT NOT NULL DEFAULT '',
            error TEXT NOT NULL DEFAULT '',
            created_at DOUBLE PRECISION NOT NULL,
            started_at DOUBLE PRECISION,
            finished_at DOUBLE PRECISION,
            idem_key TEXT,
            UNIQUE (owner, idem_key)
        );
        CREATE INDEX jobs_owner_created ON jobs (owner, created_at);
        CREATE INDEX jobs_status ON jobs (status);
        CREATE TABLE items (
            job_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            input JSONB,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            result JSONB,
            error TEXT,
            duration_ms DOUBLE PRECISION,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (job_id, idx)
        );
        CREATE INDEX items_job_status ON items (job_id, status, idx);
        CREATE TABLE history (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            record JSONB NOT NULL,
            source TEXT NOT NULL DEFAULT '',
            created_at DOUBLE PRECISION NOT NULL
        );
        CREATE TABLE files (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            name TEXT NOT NULL,
            size BIGINT NOT NULL,
            sha256 TEXT NOT NULL,
            path TEXT NOT NULL,
            storage TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL
        );
        CREATE TABLE cache (
            namespace TEXT NOT NULL,
            key TEXT NOT NULL,
            value JSONB,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (namespace, key)
        );
        CREATE TABLE runs (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            workload TEXT NOT NULL,
            backend TEXT NOT NULL,
            workers INTEGER NOT NULL,
            chunk_size INTEGER,
            items INTEGER NOT NULL,
            seconds DOUBLE PRECISION NOT NULL,
            source TEXT NOT NULL DEFAULT 'job',
            created_at DOUBLE PRECISION NOT NULL
        );
        """,
        # 2: leases (several servers on one store) and history per owner
        """
        ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
        ALTER TABLE jobs ADD COLUMN lease_expires DOUBLE PRECISION;
        ALTER TABLE history ADD COLUMN owner TEXT NOT NULL DEFAULT '';
        CREATE INDEX history_owner ON history (owner, id);
        """,
    ],
}
SCHEMA_VERSION_DDL = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at {real} NOT NULL)"


def schema_sql(dialect: str = "postgres") -> str:
    """The whole schema as one script, e.g. to paste into the Supabase SQL editor."""
    real = "REAL" if dialect == "sqlite" else "DOUBLE PRECISION"
    steps = MIGRATIONS[dialect]
    parts = [SCHEMA_VERSION_DDL.format(real=real) + ";"]
    for number, step in enumerate(steps, start=1):
        parts.append(step.strip())
        parts.append(f"INSERT INTO schema_version (version, applied_at) VALUES ({number}, 0);")
    return "\n".join(parts) + "\n"


# A job some queue must run (or finish): one left with pending items (unless cancelled), or an active one a
# queue held a lease on. Active jobs that never had a lease belong to something else (the RabbitMQ intake
# stores finished items straight into its own jobs): they are never taken.
UNFINISHED_JOB_SQL = (
    "((jobs.status IN ('pending', 'running') AND jobs.lease_owner IS NOT NULL) OR (jobs.status <> 'cancelled' "
    "AND EXISTS (SELECT 1 FROM items WHERE items.job_id = jobs.id AND items.status = 'pending')))"
)
DONE_STATUSES = ("completed", "failed", "cancelled")  # item statuses counted in a job's `done`
FAILED_STATUSES = ("failed", "cancelled")  # item statuses counted in a job's `failed`


def status_count_delta(before: Mapping[Any, int], after: Mapping[Any, int]) -> tuple[int, int]:
    """How much done and failed change when items counted per status as `before` (None: absent) become `after`."""
    done = sum(n for status, n in after.items() if status in DONE_STATUSES)
    done -= sum(n for status, n in before.items() if status in DONE_STATUSES)
    failed = sum(n for status, n in after.items() if status in FAILED_STATUSES)
    failed -= sum(n for status, n in before.items() if status in FAILED_STATUSES)
    return done, failed


def counter_delta(before: dict[int, str | None], rows: Sequence[dict]) -> tuple[int, int]:
    """How much done and failed change when rows replace items whose statuses were `before` (None: absent/pending)."""
    return status_count_delta(Counter(before.get(row["idx"]) for row in rows), Counter(row["status"] for row in rows))


class StoreError(RuntimeError):
    """A store could not be opened or used (bad schema, unreachable server)."""


def now() -> float:
    return time.time()


def _json_default(value: Any) -> Any:
    """numpy scalars and dates, which pandas rows are full of, as plain JSON values."""
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    raise TypeError(f"a {type(value).__name__} cannot be stored as JSON")


def json_safe(value: Any) -> Any:
    """The value with NaN and infinities replaced by None: JSON has no such numbers and PostgreSQL refuses them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


# The standard encoder, for what orjson refuses (an int past 64 bits, a lone surrogate): it says what is wrong.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_json_default)
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS  # {1: x} is stored as {"1": x}, as the json module does


def dumps(value: Any) -> str:
    """JSON text for a JSON column, the same on every backend: compact, NaN stored as null
    (pandas' missing values), numpy scalars and dates converted.

    orjson writes this in C (every result row is encoded once: it is the store's hot path);
    the json module handles the rare value orjson refuses, the same way as before.
    """
    try:
        return orjson.dumps(value, default=_json_default, option=_ORJSON_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError
        pass
    try:
        return _ENCODER.encode(value)
    except ValueError:  # a non-finite float somewhere: rare, so only then walk the value
        return _ENCODER.encode(json_safe(value))


def plain_json(value: Any) -> Any:
    """The value as the JSON column will hold it (for clients that encode JSON themselves)."""
    return loads(dumps(value))


def loads(text: str | bytes | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # e.g. NaN or a huge int written before orjson: the json module reads them
        return json.loads(text)


def new_job_row(job: dict) -> dict:
    """A complete jobs row from what the caller gave; rejects unknown keys and bad statuses."""
    unknown = set(job) - set(JOB_COLUMNS)
    if unknown:
        raise ValueError(f"unknown job fields: {sorted(unknown)}")
    for required in ("id", "owner"):
        if not job.get(required):
            raise ValueError(f"a job needs a non-empty {required!r}")
    row = {**_JOB_DEFAULTS, "created_at": now(), **job}
    if not row["idem_key"]:
        row["idem_key"] = None  # NULLs never collide, so jobs without a key are all distinct
    check_job_fields(row)
    return {column: row[column] for column in JOB_COLUMNS}


def check_job_fields(fields: dict) -> None:
    """Reject unknown columns and statuses before they reach SQL."""
    unknown = set(fields) - set(JOB_COLUMNS)
    if unknown:
        raise ValueError(f"unknown job fields: {sorted(unknown)}")
    if "status" in fields and fields["status"] not in JOB_STATUSES:
        raise ValueError(f"job status {fields['status']!r} is not one of {JOB_STATUSES}")


def result_values(job_id: str, rows: Sequence[dict], encode: Callable[[Any], Any] | None = None) -> list[tuple]:
    """Each result row as a RESULT_COLUMNS tuple, one per idx (the last wins, so one batch never hits a key twice).

    encode: applied to each result that is not None (e.g. `dumps`, for a backend that binds JSON as text).
    One pass and no dict per row: this runs for every item of every durable job.
    """
    stamp = now()
    by_idx: dict[int, tuple] = {}
    for row in rows:
        status = row.get("status")
        if status not in ITEM_STATUSES:
            raise ValueError(f"item status {status!r} is not one of {ITEM_STATUSES}")
        idx = int(row["idx"])
        result = row.get("result")
        if result is not None and encode is not None:
            result = encode(result)
        duration = row.get("duration_ms")
        by_idx[idx] = (job_id, idx, status, int(row.get("attempts", 1)), result, row.get("error"),
                       None if duration is None else float(duration), stamp)
    return list(by_idx.values())


def result_rows(job_id: str, rows: Sequence[dict]) -> list[dict]:
    """Complete item result rows as dicts (RESULT_COLUMNS), one per idx (the last wins)."""
    return [dict(zip(RESULT_COLUMNS, values)) for values in result_values(job_id, rows)]


def run_row(run: dict) -> dict:
    """A complete runs row; source defaults to "job"."""
    missing = {"workload", "backend", "workers", "items", "seconds"} - set(run)
    if missing:
        raise ValueError(f"a run needs {sorted(missing)}")
    row = {"chunk_size": None, "source": "job", "created_at": now(), **run}
    if row["source"] not in RUN_SOURCES:
        raise ValueError(f"run source {row['source']!r} is not one of {RUN_SOURCES}")
    return {column: row[column] for column in RUN_COLUMNS}


def file_row(meta: dict) -> dict:
    missing = set(FILE_COLUMNS) - {"created_at"} - set(meta)
    if missing:
        raise ValueError(f"file metadata needs {sorted(missing)}")
    row = {"created_at": now(), **meta}
    return {column: row[column] for column in FILE_COLUMNS}


def check_table_rows(table: str, rows: Sequence[dict]) -> tuple[str, ...]:
    """The columns of a generic batch insert, checked against the known schema (names go into SQL)."""
    if table not in TABLE_COLUMNS:
        raise ValueError(f"unknown table {table!r}; known: {sorted(TABLE_COLUMNS)}")
    columns = tuple(rows[0]) if rows else ()
    for row in rows:
        if tuple(row) != columns:
            raise ValueError("every row of a batch insert must have the same keys in the same order")
    unknown = set(columns) - set(TABLE_COLUMNS[table])
    if unknown:
        raise ValueError(f"unknown columns for {table}: {sorted(unknown)}")
    return columns


C = TypeVar("C")


class ConnectionPool(Generic[C]):
    """A few reusable connections shared by all threads: borrow one per operation.

    Threads come and go (Streamlit starts one per rerun), so connections are not
    tied to threads; at most `size` are open, and a borrower waits for a free one.
    """

    def __init__(self, connect: Callable[[], C], size: int, is_broken: Callable[[C], bool], close: Callable[[C], None]) -> None:
        self._connect = connect
        self._is_broken = is_broken
        self._close = close
        self._idle: queue.LifoQueue[C] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._closed = False

    @contextmanager
    def connection(self, timeout: float = 60.0) -> Iterator[C]:
        if self._closed:
            raise StoreError("the store is closed")
        if not self._slots.acquire(timeout=timeout):
            raise StoreError(f"no database connection became free within {timeout:.0f} s")
        conn = None
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = self._connect()
            yield conn
        finally:
            if conn is not None:
                self._give_back(conn)
            self._slots.release()

    def _give_back(self, conn: C) -> None:
        if self._closed or self._is_broken(conn):
            self._close_quietly(conn)
        else:
            self._idle.put(conn)

    def _close_quietly(self, conn: C) -> None:
        try:
            self._close(conn)
        except Exception:  # closing a dead connection may fail; it is gone either way
            pass

    def close(self) -> None:
        """Close idle connections now; borrowed ones are closed when given back."""
        self._closed = True
        while True:
            try:
                self._close_quietly(self._idle.get_nowait())
            except queue.Empty:
                break


class Store(ABC):
    """Jobs, their items, history, uploaded files, a small cache and performance runs.

    All methods are thread-safe. Lists come newest first unless said otherwise.
    """

    backend: str = ""

    # --- jobs -------------------------------------------------------------
    @abstractmethod
    def create_job(self, job: dict) -> bool:
        """Insert a job; False (and nothing changed) if its id or (owner, idem_key) exists."""

    @abstractmethod
    def find_job_by_key(self, owner: str, idem_key: str) -> JobRow | None: ...

    @abstractmethod
    def get_job(self, job_id: str) -> JobRow | None: ...

    @abstractmethod
    def list_jobs(self, owner: str | None = None, statuses: Sequence[str] | None = None,
                  kind: str | None = None, limit: int = 100) -> list[JobRow]:
        """Jobs newest first, optionally filtered."""

    @abstractmethod
    def update_job(self, job_id: str, **fields: Any) -> None: ...

    # --- items ------------------------------------------------------------
    @abstractmethod
    def add_items(self, job_id: str, inputs: Iterable[tuple[int, Any]]) -> int:
        """Add pending items in one batch; existing (job_id, idx) are left alone. Returns how many were new."""

    @abstractmethod
    def save_results(self, job_id: str, rows: Sequence[dict]) -> None:
        """Upsert results by (job_id, idx) in one transaction; attempts defaults to 1.

        The job's `done` and `failed` counters change in the same transaction, by what
        these rows changed in the item rows, so no save can overwrite a newer count.
        """

    def prepare_results(self, job_id: str, rows: Sequence[dict]) -> Any:
        """Rows made ready for save_prepared, in the caller's thread (pure: no I/O, no lock).

        The durable queue calls this in the worker thread that ran the chunk, so the encoding
        is spread over many threads and the one writer thread only writes. Raises ValueError or
        TypeError for rows the store cannot hold (the queue then saves them with save_results).
        """
        return list(rows)

    def save_prepared(self, job_id: str, batches: Sequence[Any]) -> None:
        """Save several prepare_results() batches of one job as one save_results (one transaction)."""
        self.save_results(job_id, [row for batch in batches for row in batch])

    @abstractmethod
    def pending_items(self, job_id: str) -> list[tuple[int, Any]]:
        """(idx, input) of pending items, by idx."""

    @abstractmethod
    def item_rows(self, job_id: str, status: str | None = None, limit: int | None = None, offset: int = 0) -> list[ItemRow]:
        """Item rows by idx."""

    @abstractmethod
    def item_counts(self, job_id: str) -> dict[str, int]:
        """Count per item status; every status in ITEM_STATUSES is present."""

    def finished_values(self, job_id: str, key: str, min_idx: int = 0) -> list[tuple[int, str, Any]]:
        """(idx, status, result[key]) of the job's finished items (completed, failed, cancelled) from idx min_idx on,
        by idx: what a page polling a running job tallies, without reading whole rows. A backend that can pick one
        field of the result in its query overrides this; here the rows from min_idx on are read (items are
        numbered 0..total-1, so they are the rows past the first min_idx)."""
        return [(row["idx"], row["status"], (row.get("result") or {}).get(key) if row["status"] == "completed" else None)
                for row in self.item_rows(job_id, offset=min_idx) if row["status"] in DONE_STATUSES]

    @abstractmethod
    def cancel_pending(self, job_id: str, reason: str) -> int:
        """Mark pending items cancelled with the reason as their error; returns how many."""

    @abstractmethod
    def fail_pending(self, job_id: str, reason: str) -> int:
        """Mark pending items failed with the reason as their error (counters follow); returns how many."""

    @abstractmethod
    def reopen_items(self, job_id: str, statuses: Sequence[str] = ("cancelled",)) -> int:
        """Set items in these statuses back to pending (a resubmitted batch re-runs only those); returns how many."""

    # --- finishing and leases ------------------------------------------------
    @abstractmethod
    def finish_job(self, job_id: str, status: str, **fields: Any) -> bool:
        """Set the final status with done/failed counted from the items, and drop the lease, in one transaction.

        Refuses (returns False, changes nothing) to mark a job "completed" while any item is pending.
        """

    @abstractmethod
    def claim_job(self, job_id: str, server: str, lease_s: float) -> bool:
        """Take (or renew) the job's lease for `server` unless another server's lease still holds."""

    @abstractmethod
    def claim_orphans(self, server: str, lease_s: float, limit: int = 100) -> list[JobRow]:
        """Claim unfinished jobs (active, or with pending items) whose lease is free or expired; returns them claimed."""

    @abstractmethod
    def release_lease(self, job_id: str, server: str) -> bool:
        """Expire the job's lease now if `server` still holds it (that server is known dead); True if it did."""

    @abstractmethod
    def renew_leases(self, job_ids: Sequence[str], server: str, lease_s: float) -> set[str]:
        """Extend this server's leases; returns the ids it still holds (a lost id was taken over)."""

    # --- validation history ------------------------------------------------
    @abstractmethod
    def add_history(self, records: Sequence[dict], source: str, owner: str = "") -> int:
        """Store accepted records as the owner's history; returns how many."""

    @abstractmethod
    def history(self, limit: int | None = None, owner: str | None = None) -> list[HistoryRow]:
        """History rows (id, record, source, created_at, owner), newest first; only the owner's when given."""

    # --- uploaded files ----------------------------------------------------
    @abstractmethod
    def add_file(self, meta: dict) -> None:
        """Record an uploaded file; an existing id keeps its first record (uploads are write-once)."""

    @abstractmethod
    def get_file(self, file_id: str) -> FileRow | None: ...

    # --- key-value cache ---------------------------------------------------
    @abstractmethod
    def cache_get(self, namespace: str, key: str) -> Any | None:
        """The cached value, or None if absent (so do not cache None itself)."""

    @abstractmethod
    def cache_put(self, namespace: str, key: str, value: Any) -> None: ...

    # --- performance runs --------------------------------------------------
    @abstractmethod
    def record_run(self, run: dict) -> None: ...

    @abstractmethod
    def runs(self, limit: int = 1000) -> list[RunRow]:
        """The latest runs, newest first."""

    # --- helpers for db_ops ------------------------------------------------
    @abstractmethod
    def insert_rows(self, table: str, rows: Sequence[dict]) -> int:
        """Plain batch insert into one of the schema's tables (one transaction); returns the row count."""

    def execute(self, sql: str, params: Sequence[Any] | dict | None = None) -> list[dict]:
        """Run one read-only SQL query and return its rows as dicts (SQL backends only)."""
        raise NotImplementedError(f"the {self.backend} backend cannot run SQL; use a SQL backend (DATABASE_URL)")

    @abstractmethod
    def close(self) -> None: ...
