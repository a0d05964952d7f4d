"""The PostgreSQL backend (psycopg 3): for a shared server, including Supabase's direct URL.

Batches go through binary COPY, the fastest way into PostgreSQL (100k rows in
about 0.3 s against 8 s one at a time): `add_items` and `save_results` COPY into
a per-connection temporary table and then INSERT ... ON CONFLICT from it, so
duplicates are skipped or updated in one transaction. JSON columns are JSONB.
Connections come from a small pool shared by all threads.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence, TypeVar, cast

import psycopg
from psycopg import sql
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb, set_json_dumps

from utils.store.base import (
    FileRow, HistoryRow, ItemRow, JobRow, RunRow,
    DONE_STATUSES,
    FAILED_STATUSES,
    ITEM_STATUSES,
    UNFINISHED_JOB_SQL,
    JOB_COLUMNS,
    JSON_COLUMNS,
    MIGRATIONS,
    RESULT_COLUMNS,
    SCHEMA_VERSION_DDL,
    ConnectionPool,
    Store,
    StoreError,
    check_job_fields,
    check_table_rows,
    counter_delta,
    dumps,
    file_row,
    new_job_row,
    now,
    result_rows,
    run_row,
)

T = TypeVar("T")
Conn = psycopg.Connection[DictRow]  # every connection is opened with row_factory=dict_row
MIGRATION_LOCK_ID = 0x5350494E  # "SPIN": serialises migrations when several processes open the store at once
# Staging table for COPY; rows vanish at commit, the table lives as long as the connection.
STAGING_DDL = "CREATE TEMP TABLE IF NOT EXISTS items_in (LIKE items INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
INPUT_TYPES = ["text", "int4", "jsonb", "float8"]
RESULT_TYPES = ["text", "int4", "text", "int4", "jsonb", "text", "float8", "float8"]
UPSERT_RESULTS = (
    f"INSERT INTO items ({', '.join(RESULT_COLUMNS)}) SELECT {', '.join(RESULT_COLUMNS)} FROM items_in "
    "ON CONFLICT (job_id, idx) DO UPDATE SET status = EXCLUDED.status, attempts = EXCLUDED.attempts, "
    "result = EXCLUDED.result, error = EXCLUDED.error, duration_ms = EXCLUDED.duration_ms, "
    "updated_at = EXCLUDED.updated_at"
)
STATUS_BEFORE = "SELECT i.idx, i.status FROM items i JOIN items_in s ON i.job_id = s.job_id AND i.idx = s.idx"
RECOUNT = (
    f"UPDATE jobs SET done = (SELECT COUNT(*) FROM items WHERE job_id = %(id)s AND status IN {DONE_STATUSES}), "
    f"failed = (SELECT COUNT(*) FROM items WHERE job_id = %(id)s AND status IN {FAILED_STATUSES}) WHERE id = %(id)s"
)
LOCK_JOB = "SELECT id FROM jobs WHERE id = %s FOR UPDATE"  # serialises counter changes of one job


class PostgresStore(Store):
    """Store in a PostgreSQL database given by a postgresql:// URL."""

    backend = "postgres"

    def __init__(self, url: str, pool_size: int = 8, connect_timeout_s: int = 10) -> None:
        self.url = url
        self._connect_timeout_s = connect_timeout_s
        self._pool: ConnectionPool[Conn] = ConnectionPool(
            self._connect, pool_size, is_broken=lambda conn: conn.closed or conn.broken, close=lambda conn: conn.close()
        )
        try:
            self._migrate()
        except psycopg.OperationalError as exc:
            self._pool.close()
            raise StoreError(f"cannot open the PostgreSQL store: {exc}") from exc

    # --- plumbing ------------------------------------------------------------
    def _connect(self) -> Conn:
        conn = psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=self._connect_timeout_s)
        set_json_dumps(dumps, conn)  # JSON written exactly as on SQLite (NaN as null, numpy scalars)
        return conn

    def _run(self, work: Callable[[Conn], T], transaction: bool = True) -> T:
        """Run `work` on a pooled connection; retry once if that connection had died (e.g. server restart)."""
        for attempt in (1, 2):
            with self._pool.connection() as conn:
                try:
                    if not transaction:
                        return work(conn)
                    with conn.transaction():
                        return work(conn)
                except psycopg.OperationalError:
                    if attempt == 2 or not conn.broken:
                        raise
        raise AssertionError("unreachable")

    def _rows(self, query: str, params: Sequence[Any] = ()) -> list[DictRow]:
        return self._run(lambda conn: conn.execute(query, params).fetchall(), transaction=False)

    def _migrate(self) -> None:
        def work(conn: Conn) -> None:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_ID,))
            conn.execute(SCHEMA_VERSION_DDL.format(real="DOUBLE PRECISION"))
            version = conn.execute("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version").fetchone()
            assert version is not None  # an aggregate without GROUP BY returns one row
            current = version["v"]
            for number, step in enumerate(MIGRATIONS["postgres"], start=1):
                if number > current:
                    conn.execute(step)
                    conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (%s, %s)", (number, now()))

        self._run(work)

    def schema_version(self) -> int:
        return self._rows("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version")[0]["v"]

    # --- jobs ----------------------------------------------------------------
    def create_job(self, job: dict) -> bool:
        row = new_job_row(job)
        row["params"] = Jsonb(row["params"])
        query = (f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({', '.join(['%s'] * len(JOB_COLUMNS))}) "
                 "ON CONFLICT DO NOTHING")
        return self._run(lambda conn: conn.execute(query, list(row.values())).rowcount == 1)

    def find_job_by_key(self, owner: str, idem_key: str) -> JobRow | None:
        rows = self._rows("SELECT * FROM jobs WHERE owner = %s AND idem_key = %s", (owner, idem_key))
        return cast(JobRow, rows[0]) if rows else None

    def get_job(self, job_id: str) -> JobRow | None:
        rows = self._rows("SELECT * FROM jobs WHERE id = %s", (job_id,))
        return cast(JobRow, rows[0]) if rows else None

    def list_jobs(self, owner: str | None = None, statuses: Sequence[str] | None = None,
                  kind: str | None = None, limit: int = 100) -> list[JobRow]:
        where: list[str] = ["TRUE"]
        params: list[str | list[str]] = []  # a list binds as a PostgreSQL array (for ANY)
        if owner is not None:
            where.append("owner = %s")
            params.append(owner)
        if statuses is not None:
            where.append("status = ANY(%s)")
            params.append(list(statuses))
        if kind is not None:
            where.append("kind = %s")
            params.append(kind)
        query = f"SELECT * FROM jobs WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC LIMIT %s"
        return cast("list[JobRow]", self._rows(query, [*params, int(limit)]))

    def update_job(self, job_id: str, **fields: Any) -> None:
        check_job_fields(fields)
        fields.pop("id", None)
        if not fields:
            return
        if "params" in fields:
            fields["params"] = Jsonb(fields["params"])
        query = f"UPDATE jobs SET {', '.join(f'{name} = %s' for name in fields)} WHERE id = %s"
        self._run(lambda conn: conn.execute(query, [*fields.values(), job_id]))

    # --- items ---------------------------------------------------------------
    def add_items(self, job_id: str, inputs: Iterable[tuple[int, Any]]) -> int:
        stamp = now()
        rows = [(job_id, int(idx), value, stamp) for idx, value in inputs]
        if not rows:
            return 0

        def work(conn: Conn) -> int:
            conn.execute(STAGING_DDL)
            with conn.cursor() as cur:
                with cur.copy("COPY items_in (job_id, idx, input, updated_at) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(INPUT_TYPES)
                    for row in rows:
                        copy.write_row(row)
                cur.execute("INSERT INTO items (job_id, idx, input, status, attempts, updated_at) "
                            "SELECT job_id, idx, input, 'pending', 0, updated_at FROM items_in "
                            "ON CONFLICT (job_id, idx) DO NOTHING")
                return cur.rowcount

        return self._run(work)

    def save_results(self, job_id: str, rows: Sequence[dict]) -> None:
        complete = result_rows(job_id, rows)
        if not complete:
            return

        def work(conn: Conn) -> None:
            conn.execute(STAGING_DDL)
            with conn.cursor() as cur:
                with cur.copy(f"COPY items_in ({', '.join(RESULT_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(RESULT_TYPES)
                    for row in complete:
                        copy.write_row([row[column] for column in RESULT_COLUMNS])
                cur.execute(LOCK_JOB, (job_id,))
                before = {row["idx"]: row["status"] for row in cur.execute(STATUS_BEFORE).fetchall()}
                cur.execute(UPSERT_RESULTS)
                done, failed = counter_delta(before, complete)
                if done or failed:
                    cur.execute("UPDATE jobs SET done = done + %s, failed = failed + %s WHERE id = %s",
                                (done, failed, job_id))

        self._run(work)

    def pending_items(self, job_id: str) -> list[tuple[int, Any]]:
        rows = self._rows("SELECT idx, input FROM items WHERE job_id = %s AND status = 'pending' ORDER BY idx", (job_id,))
        return [(row["idx"], row["input"]) for row in rows]

    def item_rows(self, job_id: str, status: str | None = None, limit: int | None = None, offset: int = 0) -> list[ItemRow]:
        where, params = "job_id = %s", [job_id]
        if status is not None:
            where += " AND status = %s"
            params.append(status)
        query = f"SELECT * FROM items WHERE {where} ORDER BY idx LIMIT %s OFFSET %s"
        return cast("list[ItemRow]", self._rows(query, [*params, limit, int(offset)]))

    def item_counts(self, job_id: str) -> dict[str, int]:
        counts = dict.fromkeys(ITEM_STATUSES, 0)
        for row in self._rows("SELECT status, COUNT(*) AS n FROM items WHERE job_id = %s GROUP BY status", (job_id,)):
            counts[row["status"]] = row["n"]
        return counts

    def finished_values(self, job_id: str, key: str, min_idx: int = 0) -> list[tuple[int, str, Any]]:
        # One field picked from each result (JSONB) by PostgreSQL, as text.
        query = ("SELECT idx, status, CASE WHEN status = 'completed' THEN result ->> %s END AS value FROM items "
                 "WHERE job_id = %s AND status = ANY(%s) AND idx >= %s ORDER BY idx")
        rows = self._rows(query, (key, job_id, list(DONE_STATUSES), int(min_idx)))
        return [(row["idx"], row["status"], row["value"]) for row in rows]

    def cancel_pending(self, job_id: str, reason: str) -> int:
        return self._close_pending(job_id, "cancelled", reason)

    def fail_pending(self, job_id: str, reason: str) -> int:
        return self._close_pending(job_id, "failed", reason)

    def _close_pending(self, job_id: str, status: str, reason: str) -> int:
        query = "UPDATE items SET status = %s, error = %s, updated_at = %s WHERE job_id = %s AND status = 'pending'"

        def work(conn: Conn) -> int:
            conn.execute(LOCK_JOB, (job_id,))
            count = conn.execute(query, (status, reason, now(), job_id)).rowcount
            conn.execute(RECOUNT, {"id": job_id})
            return count

        return self._run(work)

    def reopen_items(self, job_id: str, statuses: Sequence[str] = ("cancelled",)) -> int:
        query = ("UPDATE items SET status = 'pending', error = NULL, result = NULL, updated_at = %s "
                 "WHERE job_id = %s AND status = ANY(%s)")

        def work(conn: Conn) -> int:
            conn.execute(LOCK_JOB, (job_id,))
            count = conn.execute(query, (now(), job_id, list(statuses))).rowcount
            if count:
                conn.execute("UPDATE jobs SET status = 'pending', error = '', finished_at = NULL WHERE id = %s", (job_id,))
                conn.execute(RECOUNT, {"id": job_id})
            return count

        return self._run(work)

    # --- finishing and leases --------------------------------------------------
    def finish_job(self, job_id: str, status: str, **fields: Any) -> bool:
        check_job_fields({**fields, "status": status})
        fields = {**fields, "status": status, "lease_owner": None, "lease_expires": None}
        fields.setdefault("finished_at", now())
        query = f"UPDATE jobs SET {', '.join(f'{name} = %s' for name in fields)} WHERE id = %s"

        def work(conn: Conn) -> bool:
            conn.execute(LOCK_JOB, (job_id,))
            counted = conn.execute("SELECT COUNT(*) AS n FROM items WHERE job_id = %s AND status = 'pending'",
                                   (job_id,)).fetchone()
            assert counted is not None  # an aggregate without GROUP BY returns one row
            pending = counted["n"]
            if status == "completed" and pending:
                return False
            conn.execute(RECOUNT, {"id": job_id})
            conn.execute(query, [*fields.values(), job_id])
            return True

        return self._run(work)

    def claim_job(self, job_id: str, server: str, lease_s: float) -> bool:
        query = ("UPDATE jobs SET lease_owner = %s, lease_expires = %s WHERE id = %s "
                 "AND (lease_owner IS NULL OR lease_owner = %s OR lease_expires < %s)")
        stamp = now()
        return self._run(lambda conn: conn.execute(query, (server, stamp + lease_s, job_id, server, stamp)).rowcount == 1)

    def claim_orphans(self, server: str, lease_s: float, limit: int = 100) -> list[JobRow]:
        stamp = now()
        query = (f"WITH free AS (SELECT id FROM jobs WHERE {UNFINISHED_JOB_SQL} "
                 "AND (lease_owner IS NULL OR lease_expires < %s) "
                 "ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED) "
                 "UPDATE jobs SET lease_owner = %s, lease_expires = %s FROM free WHERE jobs.id = free.id RETURNING jobs.*")

        def work(conn: Conn) -> list[JobRow]:
            rows = conn.execute(query, (stamp, int(limit), server, stamp + lease_s)).fetchall()
            return cast("list[JobRow]", sorted(rows, key=lambda row: row["created_at"]))

        return self._run(work)

    def release_lease(self, job_id: str, server: str) -> bool:
        query = "UPDATE jobs SET lease_expires = 0 WHERE id = %s AND lease_owner = %s"
        return self._run(lambda conn: conn.execute(query, (job_id, server)).rowcount == 1)

    def renew_leases(self, job_ids: Sequence[str], server: str, lease_s: float) -> set[str]:
        if not job_ids:
            return set()
        stamp = now()
        query = ("UPDATE jobs SET lease_owner = %s, lease_expires = %s WHERE id = ANY(%s) AND status = 'running' "
                 "AND (lease_owner IS NULL OR lease_owner = %s OR lease_expires < %s) RETURNING id")
        rows = self._run(lambda conn: conn.execute(query, (server, stamp + lease_s, list(job_ids), server, stamp)).fetchall())
        return {row["id"] for row in rows}

    # --- history -------------------------------------------------------------
    def add_history(self, records: Sequence[dict], source: str, owner: str = "") -> int:
        stamp = now()
        rows = [{"record": record, "source": source, "created_at": stamp, "owner": owner} for record in records]
        return self.insert_rows("history", rows)

    def history(self, limit: int | None = None, owner: str | None = None) -> list[HistoryRow]:
        if owner is None:
            return cast("list[HistoryRow]", self._rows("SELECT * FROM history ORDER BY id DESC LIMIT %s", (limit,)))
        return cast("list[HistoryRow]",
                    self._rows("SELECT * FROM history WHERE owner = %s ORDER BY id DESC LIMIT %s", (owner, limit)))

    # --- files ---------------------------------------------------------------
    def add_file(self, meta: dict) -> None:
        row = file_row(meta)
        query = (f"INSERT INTO files ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))}) "
                 "ON CONFLICT (id) DO NOTHING")
        self._run(lambda conn: conn.execute(query, list(row.values())))

    def get_file(self, file_id: str) -> FileRow | None:
        rows = self._rows("SELECT * FROM files WHERE id = %s", (file_id,))
        return cast(FileRow, rows[0]) if rows else None

    # --- cache ---------------------------------------------------------------
    def cache_get(self, namespace: str, key: str) -> Any | None:
        rows = self._rows("SELECT value FROM cache WHERE namespace = %s AND key = %s", (namespace, key))
        return rows[0]["value"] if rows else None

    def cache_put(self, namespace: str, key: str, value: Any) -> None:
        query = ("INSERT INTO cache (namespace, key, value, updated_at) VALUES (%s, %s, %s, %s) "
                 "ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at")
        self._run(lambda conn: conn.execute(query, (namespace, key, Jsonb(value), now())))

    # --- runs ----------------------------------------------------------------
    def record_run(self, run: dict) -> None:
        row = run_row(run)
        query = f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))})"
        self._run(lambda conn: conn.execute(query, list(row.values())))

    def runs(self, limit: int = 1000) -> list[RunRow]:
        return cast("list[RunRow]", self._rows("SELECT * FROM runs ORDER BY id DESC LIMIT %s", (int(limit),)))

    # --- db_ops helpers --------------------------------------------------------
    def insert_rows(self, table: str, rows: Sequence[dict]) -> int:
        """COPY rows into one of the schema's tables (text COPY: types come from the table)."""
        columns = check_table_rows(table, rows)
        if not rows:
            return 0
        json_columns = JSON_COLUMNS.get(table, set())
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
        )

        def work(conn: Conn) -> int:
            with conn.cursor() as cur, cur.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row([Jsonb(v) if c in json_columns and v is not None else v for c, v in row.items()])
            return len(rows)

        return self._run(work)

    def execute(self, query: str, params: Sequence[Any] | dict | None = None) -> list[dict]:
        """One query in a READ ONLY transaction (`%s` or `%(name)s` placeholders); writes raise."""
        def work(conn: Conn) -> list[DictRow]:
            conn.execute("SET TRANSACTION READ ONLY")
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

        return self._run(work)

    def close(self) -> None:
        self._pool.close()
