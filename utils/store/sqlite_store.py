"""The SQLite backend: one file on this machine, the default when no server is configured.

WAL mode lets readers run while one writer writes. Writers in this process take
one lock (SQLite allows one writer anyway, and a lock queues threads fairly where
SQLite's busy handler would make them sleep and poll); writers in other processes
are waited for by the busy timeout, and "database is locked" is retried until it
runs out. Batches are one `executemany` in one transaction.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from operator import itemgetter
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar, cast

import orjson

from utils.store.base import (
    FileRow, HistoryRow, ItemRow, JobRow, RunRow,
    DONE_STATUSES,
    FAILED_STATUSES,
    ITEM_STATUSES,
    RESULT_COLUMNS,
    UNFINISHED_JOB_SQL,
    JOB_COLUMNS,
    JSON_COLUMNS,
    MIGRATIONS,
    SCHEMA_VERSION_DDL,
    ConnectionPool,
    Store,
    check_job_fields,
    check_table_rows,
    dumps,
    file_row,
    loads,
    new_job_row,
    now,
    result_values,
    run_row,
    status_count_delta,
)

T = TypeVar("T")
# Batches of rows reach SQLite as one JSON array bound to one parameter (json_each reads it): one statement
# runs the whole batch in C with the GIL released, where executemany binds row by row in Python and takes
# the GIL back after every row (worker threads wait for it). JSON column values travel as JSON text inside
# the array (strings), so they are stored exactly as encoded.
# Statuses the items about to be saved have now (a job's counters change by the difference); CROSS JOIN
# keeps SQLite looking each idx up by primary key (`idx IN (...)` would scan all the job's items every save).
STATUS_COUNTS_SQL = ("SELECT items.status, COUNT(*) FROM json_each(:rows) AS saved CROSS JOIN items "
                     "ON items.job_id = :job_id AND items.idx = json_extract(saved.value, '$[1]') "
                     "GROUP BY items.status")
UPSERT_RESULT = ("ON CONFLICT (job_id, idx) DO UPDATE SET status = excluded.status, attempts = excluded.attempts, "
                 "result = excluded.result, error = excluded.error, duration_ms = excluded.duration_ms, "
                 "updated_at = excluded.updated_at")
SAVE_RESULTS_SQL = (  # :rows holds result_values() tuples (RESULT_COLUMNS order), results as JSON text
    f"INSERT INTO items ({', '.join(RESULT_COLUMNS)}) SELECT :job_id, "
    + ", ".join(f"json_extract(value, '$[{n}]')" for n in range(1, len(RESULT_COLUMNS)))
    + " FROM json_each(:rows) WHERE true "  # WHERE: so SQLite does not read ON CONFLICT as a join's ON
    + UPSERT_RESULT
)
SAVE_RESULTS_ROW_SQL = (  # the same, one row at a time: for a batch orjson cannot put into one array
    f"INSERT INTO items ({', '.join(RESULT_COLUMNS)}) VALUES ({', '.join('?' * len(RESULT_COLUMNS))}) "
    + UPSERT_RESULT
)
ADD_ITEMS_SQL = ("INSERT INTO items (job_id, idx, input, status, attempts, updated_at) SELECT :job_id, "
                 "json_extract(value, '$[0]'), json_extract(value, '$[1]'), 'pending', 0, :stamp "
                 "FROM json_each(:rows) WHERE true ON CONFLICT (job_id, idx) DO NOTHING")
RECOUNT_SQL = (
    f"UPDATE jobs SET done = (SELECT COUNT(*) FROM items WHERE job_id = :id AND status IN {DONE_STATUSES}), "
    f"failed = (SELECT COUNT(*) FROM items WHERE job_id = :id AND status IN {FAILED_STATUSES}) WHERE id = :id"
)


def _json_array(rows: Sequence[Sequence[Any]]) -> str:
    """Rows as one JSON array of arrays for json_each (orjson: a C loop; TypeError for text it refuses)."""
    return orjson.dumps(rows).decode()


def _until_unlocked(attempt: Callable[[], T], timeout_s: float) -> T:
    """attempt(), tried again while another connection holds the database's lock, for up to timeout_s.

    Why not the busy timeout alone: SQLite answers "database is locked" at once, without waiting, in some races,
    e.g. stores opened at the same moment on a new file all setting WAL mode (1 in 50 openings of four, under load).
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while True:
        try:
            return attempt()
        except sqlite3.OperationalError as exc:
            if not _is_locked(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (executescript would commit on its own)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


def _job(row: sqlite3.Row) -> JobRow:
    job = dict(row)
    job["params"] = loads(job["params"])
    return cast(JobRow, job)


def _item(row: sqlite3.Row) -> ItemRow:
    item = dict(row)
    item["input"] = loads(item["input"])
    item["result"] = loads(item["result"])
    return cast(ItemRow, item)


class SQLiteStore(Store):
    """Store in a SQLite file; safe for many threads and for several processes on one machine."""

    backend = "sqlite"

    def __init__(self, path: str | Path, busy_timeout_s: float = 30.0, pool_size: int = 8) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_s = busy_timeout_s
        self._write_lock = threading.Lock()
        self._pool: ConnectionPool[sqlite3.Connection] = ConnectionPool(
            self._connect, pool_size, is_broken=lambda conn: False, close=lambda conn: conn.close()
        )
        self._migrate()

    # --- plumbing ------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        _until_unlocked(lambda: conn.execute("PRAGMA journal_mode = WAL"), self._busy_timeout_s)  # see there
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in one IMMEDIATE transaction, retrying while another process holds the lock."""
        with self._write_lock, self._pool.connection() as conn:
            def attempt() -> T:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    result = work(conn)
                    conn.execute("COMMIT")
                    return result
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise

            return _until_unlocked(attempt, self._busy_timeout_s)

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._pool.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def _migrate(self) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute(SCHEMA_VERSION_DDL.format(real="REAL"))
            current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
            for number, step in enumerate(MIGRATIONS["sqlite"], start=1):
                if number <= current:
                    continue
                for statement in _statements(step):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (number, now()))

        self._write(work)

    def schema_version(self) -> int:
        return self._read("SELECT COALESCE(MAX(version), 0) FROM schema_version")[0][0]

    # --- jobs ----------------------------------------------------------------
    def create_job(self, job: dict) -> bool:
        row = new_job_row(job)
        row["params"] = dumps(row["params"])
        sql = (f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({', '.join('?' * len(JOB_COLUMNS))}) "
               "ON CONFLICT DO NOTHING")
        return self._write(lambda conn: conn.execute(sql, list(row.values())).rowcount == 1)

    def find_job_by_key(self, owner: str, idem_key: str) -> JobRow | None:
        rows = self._read("SELECT * FROM jobs WHERE owner = ? AND idem_key = ?", (owner, idem_key))
        return _job(rows[0]) if rows else None

    def get_job(self, job_id: str) -> JobRow | None:
        rows = self._read("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def list_jobs(self, owner: str | None = None, statuses: Sequence[str] | None = None,
                  kind: str | None = None, limit: int = 100) -> list[JobRow]:
        where, params = ["1 = 1"], []
        if owner is not None:
            where.append("owner = ?")
            params.append(owner)
        if statuses is not None:
            if not statuses:
                return []
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            params.extend(statuses)
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        sql = f"SELECT * FROM jobs WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC LIMIT ?"
        return [_job(row) for row in self._read(sql, [*params, int(limit)])]

    def update_job(self, job_id: str, **fields: Any) -> None:
        check_job_fields(fields)
        fields.pop("id", None)
        if not fields:
            return
        if "params" in fields:
            fields["params"] = dumps(fields["params"])
        sql = f"UPDATE jobs SET {', '.join(f'{name} = ?' for name in fields)} WHERE id = ?"
        self._write(lambda conn: conn.execute(sql, [*fields.values(), job_id]))

    # --- items ---------------------------------------------------------------
    def add_items(self, job_id: str, inputs: Iterable[tuple[int, Any]]) -> int:
        stamp = now()
        rows = [(int(idx), dumps(value)) for idx, value in inputs]
        if not rows:
            return 0
        try:
            batch = _json_array(rows)
        except TypeError:  # text orjson refuses (a lone surrogate): bind row by row, SQLite says what is wrong
            sql = ("INSERT INTO items (job_id, idx, input, status, attempts, updated_at) "
                   "VALUES (?, ?, ?, 'pending', 0, ?) ON CONFLICT (job_id, idx) DO NOTHING")
            return self._write(lambda conn: conn.executemany(sql, [(job_id, i, text, stamp) for i, text in rows]).rowcount)
        params = {"job_id": job_id, "stamp": stamp, "rows": batch}
        return self._write(lambda conn: conn.execute(ADD_ITEMS_SQL, params).rowcount)

    def save_results(self, job_id: str, rows: Sequence[dict]) -> None:
        self._save_values(job_id, result_values(job_id, rows, encode=dumps))

    def prepare_results(self, job_id: str, rows: Sequence[dict]) -> list[tuple]:
        """The SAVE_RESULTS_SQL parameters, results already encoded as JSON."""
        return result_values(job_id, rows, encode=dumps)

    def save_prepared(self, job_id: str, batches: Sequence[list[tuple]]) -> None:
        if len(batches) == 1:
            self._save_values(job_id, batches[0])
        else:  # one row per idx, the last wins (as in one save_results)
            self._save_values(job_id, list({values[1]: values for batch in batches for values in batch}.values()))

    def _save_values(self, job_id: str, params: list[tuple]) -> None:
        """Upsert RESULT_COLUMNS tuples (one per idx) and move the job's counters by what they changed."""
        if not params:
            return
        after = Counter(map(itemgetter(2), params))
        try:
            batch: str | None = _json_array(params)
        except TypeError:  # text orjson refuses (a lone surrogate): bind row by row, SQLite says what is wrong
            batch = None
        json_params = {"job_id": job_id, "rows": batch or _json_array([values[:2] for values in params])}

        def work(conn: sqlite3.Connection) -> None:
            before = dict(conn.execute(STATUS_COUNTS_SQL, json_params).fetchall())
            if batch is not None:
                conn.execute(SAVE_RESULTS_SQL, json_params)
            else:
                conn.executemany(SAVE_RESULTS_ROW_SQL, params)
            done, failed = status_count_delta(before, after)
            if done or failed:
                conn.execute("UPDATE jobs SET done = done + ?, failed = failed + ? WHERE id = ?", (done, failed, job_id))

        self._write(work)

    def pending_items(self, job_id: str) -> list[tuple[int, Any]]:
        rows = self._read("SELECT idx, input FROM items WHERE job_id = ? AND status = 'pending' ORDER BY idx", (job_id,))
        return [(row["idx"], loads(row["input"])) for row in rows]

    def item_rows(self, job_id: str, status: str | None = None, limit: int | None = None, offset: int = 0) -> list[ItemRow]:
        where, params = "job_id = ?", [job_id]
        if status is not None:
            where += " AND status = ?"
            params.append(status)
        sql = f"SELECT * FROM items WHERE {where} ORDER BY idx LIMIT ? OFFSET ?"
        rows = self._read(sql, [*params, -1 if limit is None else int(limit), int(offset)])
        return [_item(row) for row in rows]

    def item_counts(self, job_id: str) -> dict[str, int]:
        counts = dict.fromkeys(ITEM_STATUSES, 0)
        for row in self._read("SELECT status, COUNT(*) AS n FROM items WHERE job_id = ? GROUP BY status", (job_id,)):
            counts[row["status"]] = row["n"]
        return counts

    def finished_values(self, job_id: str, key: str, min_idx: int = 0) -> list[tuple[int, str, Any]]:
        # One field picked from each result's JSON by SQLite. The status index seeks straight to the finished items
        # from min_idx on; left to itself, SQLite walks the primary key and reads every pending row on the way.
        marks = ", ".join("?" * len(DONE_STATUSES))
        sql = (f"SELECT idx, status, CASE WHEN status = 'completed' THEN json_extract(result, ?) END AS value "
               f"FROM items INDEXED BY items_job_status WHERE job_id = ? AND status IN ({marks}) AND idx >= ? "
               f"ORDER BY idx")
        rows = self._read(sql, (f'$."{key}"', job_id, *DONE_STATUSES, int(min_idx)))
        return [(row["idx"], row["status"], row["value"]) for row in rows]

    def cancel_pending(self, job_id: str, reason: str) -> int:
        return self._close_pending(job_id, "cancelled", reason)

    def fail_pending(self, job_id: str, reason: str) -> int:
        return self._close_pending(job_id, "failed", reason)

    def _close_pending(self, job_id: str, status: str, reason: str) -> int:
        sql = "UPDATE items SET status = ?, error = ?, updated_at = ? WHERE job_id = ? AND status = 'pending'"

        def work(conn: sqlite3.Connection) -> int:
            count = conn.execute(sql, (status, reason, now(), job_id)).rowcount
            conn.execute(RECOUNT_SQL, {"id": job_id})
            return count

        return self._write(work)

    def reopen_items(self, job_id: str, statuses: Sequence[str] = ("cancelled",)) -> int:
        if not statuses:
            return 0
        marks = ", ".join("?" * len(statuses))
        sql = (f"UPDATE items SET status = 'pending', error = NULL, result = NULL, updated_at = ? "
               f"WHERE job_id = ? AND status IN ({marks})")

        def work(conn: sqlite3.Connection) -> int:
            count = conn.execute(sql, (now(), job_id, *statuses)).rowcount
            if count:
                conn.execute("UPDATE jobs SET status = 'pending', error = '', finished_at = NULL WHERE id = ?", (job_id,))
                conn.execute(RECOUNT_SQL, {"id": job_id})
            return count

        return self._write(work)

    # --- finishing and leases --------------------------------------------------
    def finish_job(self, job_id: str, status: str, **fields: Any) -> bool:
        check_job_fields({**fields, "status": status})
        fields = {**fields, "status": status, "lease_owner": None, "lease_expires": None}
        fields.setdefault("finished_at", now())
        sql = f"UPDATE jobs SET {', '.join(f'{name} = ?' for name in fields)} WHERE id = ?"

        def work(conn: sqlite3.Connection) -> bool:
            pending = conn.execute("SELECT COUNT(*) FROM items WHERE job_id = ? AND status = 'pending'",
                                   (job_id,)).fetchone()[0]
            if status == "completed" and pending:
                return False
            conn.execute(RECOUNT_SQL, {"id": job_id})
            conn.execute(sql, [*fields.values(), job_id])
            return True

        return self._write(work)

    def claim_job(self, job_id: str, server: str, lease_s: float) -> bool:
        sql = ("UPDATE jobs SET lease_owner = ?, lease_expires = ? WHERE id = ? "
               "AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires < ?)")
        stamp = now()
        return self._write(lambda conn: conn.execute(sql, (server, stamp + lease_s, job_id, server, stamp)).rowcount == 1)

    def claim_orphans(self, server: str, lease_s: float, limit: int = 100) -> list[JobRow]:
        stamp = now()
        select = (f"SELECT id FROM jobs WHERE {UNFINISHED_JOB_SQL} "
                  "AND (lease_owner IS NULL OR lease_expires < ?) ORDER BY created_at LIMIT ?")

        def work(conn: sqlite3.Connection) -> list[JobRow]:
            # BEGIN IMMEDIATE (in _write) holds the write lock from the select on: no other server claims in between.
            ids = [row[0] for row in conn.execute(select, (stamp, int(limit)))]
            if not ids:
                return []
            marks = ", ".join("?" * len(ids))
            conn.execute(f"UPDATE jobs SET lease_owner = ?, lease_expires = ? WHERE id IN ({marks})",
                         (server, stamp + lease_s, *ids))
            return [_job(row) for row in conn.execute(f"SELECT * FROM jobs WHERE id IN ({marks}) ORDER BY created_at", ids)]

        return self._write(work)

    def release_lease(self, job_id: str, server: str) -> bool:
        sql = "UPDATE jobs SET lease_expires = 0 WHERE id = ? AND lease_owner = ?"
        return self._write(lambda conn: conn.execute(sql, (job_id, server)).rowcount == 1)

    def renew_leases(self, job_ids: Sequence[str], server: str, lease_s: float) -> set[str]:
        if not job_ids:
            return set()
        stamp = now()
        marks = ", ".join("?" * len(job_ids))
        update = (f"UPDATE jobs SET lease_owner = ?, lease_expires = ? WHERE id IN ({marks}) AND status = 'running' "
                  "AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires < ?)")

        def work(conn: sqlite3.Connection) -> set[str]:
            conn.execute(update, (server, stamp + lease_s, *job_ids, server, stamp))
            rows = conn.execute(f"SELECT id FROM jobs WHERE id IN ({marks}) AND lease_owner = ?", (*job_ids, server))
            return {row[0] for row in rows}

        return self._write(work)

    # --- history -------------------------------------------------------------
    def add_history(self, records: Sequence[dict], source: str, owner: str = "") -> int:
        stamp = now()
        rows = [(dumps(record), source, stamp, owner) for record in records]
        if not rows:
            return 0
        sql = "INSERT INTO history (record, source, created_at, owner) VALUES (?, ?, ?, ?)"
        return self._write(lambda conn: conn.executemany(sql, rows).rowcount)

    def history(self, limit: int | None = None, owner: str | None = None) -> list[HistoryRow]:
        where, params = ("WHERE owner = ?", [owner]) if owner is not None else ("", [])
        rows = self._read(f"SELECT * FROM history {where} ORDER BY id DESC LIMIT ?",
                          (*params, -1 if limit is None else int(limit)))
        return [cast(HistoryRow, {**dict(row), "record": loads(row["record"])}) for row in rows]

    # --- files ---------------------------------------------------------------
    def add_file(self, meta: dict) -> None:
        row = file_row(meta)
        sql = f"INSERT INTO files ({', '.join(row)}) VALUES ({', '.join('?' * len(row))}) ON CONFLICT (id) DO NOTHING"
        self._write(lambda conn: conn.execute(sql, list(row.values())))

    def get_file(self, file_id: str) -> FileRow | None:
        rows = self._read("SELECT * FROM files WHERE id = ?", (file_id,))
        return cast(FileRow, dict(rows[0])) if rows else None

    # --- cache ---------------------------------------------------------------
    def cache_get(self, namespace: str, key: str) -> Any | None:
        rows = self._read("SELECT value FROM cache WHERE namespace = ? AND key = ?", (namespace, key))
        return loads(rows[0]["value"]) if rows else None

    def cache_put(self, namespace: str, key: str, value: Any) -> None:
        sql = ("INSERT INTO cache (namespace, key, value, updated_at) VALUES (?, ?, ?, ?) "
               "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at")
        self._write(lambda conn: conn.execute(sql, (namespace, key, dumps(value), now())))

    # --- runs ----------------------------------------------------------------
    def record_run(self, run: dict) -> None:
        row = run_row(run)
        sql = f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"
        self._write(lambda conn: conn.execute(sql, list(row.values())))

    def runs(self, limit: int = 1000) -> list[RunRow]:
        return [cast(RunRow, dict(row)) for row in self._read("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (int(limit),))]

    # --- db_ops helpers --------------------------------------------------------
    def insert_rows(self, table: str, rows: Sequence[dict]) -> int:
        columns = check_table_rows(table, rows)
        if not rows:
            return 0
        json_columns = JSON_COLUMNS.get(table, set())
        params = [[dumps(v) if c in json_columns and v is not None else v for c, v in row.items()] for row in rows]
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        return self._write(lambda conn: conn.executemany(sql, params).rowcount)

    def execute(self, sql: str, params: Sequence[Any] | dict | None = None) -> list[dict]:
        """One read-only query (`?` or `:name` placeholders); writes fail with sqlite3.OperationalError."""
        with self._pool.connection() as conn:
            conn.execute("PRAGMA query_only = 1")
            try:
                return [dict(row) for row in conn.execute(sql, params or ())]
            finally:
                conn.execute("PRAGMA query_only = 0")

    def close(self) -> None:
        self._pool.close()
