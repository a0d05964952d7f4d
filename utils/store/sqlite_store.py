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
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

from utils.store.base import (
    ITEM_STATUSES,
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
    result_rows,
    run_row,
)

T = TypeVar("T")


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


def _job(row: sqlite3.Row | None) -> dict | None:
    if row is None:
        return None
    job = dict(row)
    job["params"] = loads(job["params"])
    return job


def _item(row: sqlite3.Row) -> dict:
    item = dict(row)
    item["input"] = loads(item["input"])
    item["result"] = loads(item["result"])
    return item


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
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in one IMMEDIATE transaction, retrying while another process holds the lock."""
        deadline = time.monotonic() + self._busy_timeout_s
        delay = 0.01
        with self._write_lock, self._pool.connection() as conn:
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    result = work(conn)
                    conn.execute("COMMIT")
                    return result
                except sqlite3.OperationalError as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    if not _is_locked(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(delay)
                    delay = min(delay * 2, 0.5)
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise

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

    def find_job_by_key(self, owner: str, idem_key: str) -> dict | None:
        rows = self._read("SELECT * FROM jobs WHERE owner = ? AND idem_key = ?", (owner, idem_key))
        return _job(rows[0]) if rows else None

    def get_job(self, job_id: str) -> dict | None:
        rows = self._read("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def list_jobs(self, owner: str | None = None, statuses: Sequence[str] | None = None,
                  kind: str | None = None, limit: int = 100) -> list[dict]:
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
        rows = [(job_id, int(idx), dumps(value), stamp) for idx, value in inputs]
        sql = ("INSERT INTO items (job_id, idx, input, status, attempts, updated_at) VALUES (?, ?, ?, 'pending', 0, ?) "
               "ON CONFLICT (job_id, idx) DO NOTHING")
        return self._write(lambda conn: conn.executemany(sql, rows).rowcount) if rows else 0

    def save_results(self, job_id: str, rows: Sequence[dict]) -> None:
        params = [
            (r["job_id"], r["idx"], r["status"], r["attempts"], None if r["result"] is None else dumps(r["result"]),
             r["error"], r["duration_ms"], r["updated_at"])
            for r in result_rows(job_id, rows)
        ]
        if not params:
            return
        sql = ("INSERT INTO items (job_id, idx, status, attempts, result, error, duration_ms, updated_at) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, idx) DO UPDATE SET "
               "status = excluded.status, attempts = excluded.attempts, result = excluded.result, "
               "error = excluded.error, duration_ms = excluded.duration_ms, updated_at = excluded.updated_at")
        self._write(lambda conn: conn.executemany(sql, params))

    def pending_items(self, job_id: str) -> list[tuple[int, Any]]:
        rows = self._read("SELECT idx, input FROM items WHERE job_id = ? AND status = 'pending' ORDER BY idx", (job_id,))
        return [(row["idx"], loads(row["input"])) for row in rows]

    def item_rows(self, job_id: str, status: str | None = None, limit: int | None = None, offset: int = 0) -> list[dict]:
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

    def cancel_pending(self, job_id: str, reason: str) -> int:
        sql = "UPDATE items SET status = 'cancelled', error = ?, updated_at = ? WHERE job_id = ? AND status = 'pending'"
        return self._write(lambda conn: conn.execute(sql, (reason, now(), job_id)).rowcount)

    # --- history -------------------------------------------------------------
    def add_history(self, records: Sequence[dict], source: str) -> int:
        stamp = now()
        rows = [(dumps(record), source, stamp) for record in records]
        if not rows:
            return 0
        sql = "INSERT INTO history (record, source, created_at) VALUES (?, ?, ?)"
        return self._write(lambda conn: conn.executemany(sql, rows).rowcount)

    def history(self, limit: int | None = None) -> list[dict]:
        rows = self._read("SELECT * FROM history ORDER BY id DESC LIMIT ?", (-1 if limit is None else int(limit),))
        return [{**dict(row), "record": loads(row["record"])} for row in rows]

    # --- files ---------------------------------------------------------------
    def add_file(self, meta: dict) -> None:
        row = file_row(meta)
        sql = f"INSERT INTO files ({', '.join(row)}) VALUES ({', '.join('?' * len(row))}) ON CONFLICT (id) DO NOTHING"
        self._write(lambda conn: conn.execute(sql, list(row.values())))

    def get_file(self, file_id: str) -> dict | None:
        rows = self._read("SELECT * FROM files WHERE id = ?", (file_id,))
        return dict(rows[0]) if rows else None

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

    def runs(self, limit: int = 1000) -> list[dict]:
        return [dict(row) for row in self._read("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (int(limit),))]

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
