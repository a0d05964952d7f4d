"""How much batching saves when storing item results: batch path vs one row at a time.

SQLite: save_results (executemany, one transaction) vs one INSERT ... ON CONFLICT
per row, each committed on its own. PostgreSQL: save_results (binary COPY into a
temp table, then one upsert) vs psycopg executemany vs one upsert per row,
autocommitted. The slow paths run on fewer rows (they are slow) and everything
is compared per row. PostgreSQL is a throw-away server from
tests/fixtures/postgres.py, started with fsync off like the tests: the
one-row-at-a-time figures are therefore optimistic (no disk flush per commit).

    python -m benchmarks.bench_store [--rows 100000] [--slow-rows 10000]
"""
from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tests.fixtures.postgres import create_database, start_postgres
from utils.store.base import dumps
from utils.store.postgres_store import PostgresStore
from utils.store.sqlite_store import SQLiteStore

UPSERT = ("INSERT INTO items (job_id, idx, status, attempts, result, error, duration_ms, updated_at) "
          "VALUES ({p}) ON CONFLICT (job_id, idx) DO UPDATE SET status = excluded.status, "
          "attempts = excluded.attempts, result = excluded.result, error = excluded.error, "
          "duration_ms = excluded.duration_ms, updated_at = excluded.updated_at")


def _results(count: int) -> list[dict]:
    return [{"idx": i, "status": "completed", "attempts": 1, "result": {"valid": True, "e164": f"+4420{i:07d}"},
             "error": None, "duration_ms": 0.12} for i in range(count)]


def _timed(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _summary(fast_name: str, fast_rows: int, fast_s: float, slow_name: str, slow_rows: int, slow_s: float) -> dict:
    fast_us, slow_us = fast_s / fast_rows * 1e6, slow_s / slow_rows * 1e6
    return {
        f"{fast_name}_rows": fast_rows, f"{fast_name}_s": round(fast_s, 3), f"{fast_name}_us_per_row": round(fast_us, 2),
        f"{slow_name}_rows": slow_rows, f"{slow_name}_s": round(slow_s, 3), f"{slow_name}_us_per_row": round(slow_us, 2),
        f"{slow_name}_vs_{fast_name}": round(slow_us / fast_us, 1),
    }


def bench_sqlite(rows: int, slow_rows: int, folder: Path) -> dict:
    store = SQLiteStore(folder / "bench.sqlite3")
    batch_s = _timed(lambda: store.save_results("batch", _results(rows)))
    store.close()
    conn = sqlite3.connect(folder / "bench.sqlite3", isolation_level=None)  # autocommit: each row commits
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    query = UPSERT.format(p=", ".join("?" * 8))
    now = time.time()

    def one_at_a_time() -> None:
        for r in _results(slow_rows):
            conn.execute(query, ("single", r["idx"], r["status"], r["attempts"], dumps(r["result"]), None, r["duration_ms"], now))

    single_s = _timed(one_at_a_time)
    conn.close()
    return _summary("executemany", rows, batch_s, "one_at_a_time", slow_rows, single_s)


def bench_postgres(rows: int, slow_rows: int, server_url: str) -> dict:
    url = create_database(server_url, prefix="bench")
    store = PostgresStore(url)
    copy_s = _timed(lambda: store.save_results("copy", _results(rows)))
    store.close()
    query = UPSERT.format(p=", ".join(["%s"] * 8))
    now = time.time()

    def params(job_id: str, count: int) -> list[tuple]:
        return [(job_id, r["idx"], r["status"], r["attempts"], Jsonb(r["result"]), None, r["duration_ms"], now)
                for r in _results(count)]

    with psycopg.connect(url, autocommit=True) as conn:
        many = params("many", rows)

        def executemany() -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(query, many)

        many_s = _timed(executemany)
        singles = params("single", slow_rows)
        single_s = _timed(lambda: [conn.execute(query, p) for p in singles])
    result = _summary("copy", rows, copy_s, "one_at_a_time", slow_rows, single_s)
    result.update({"executemany_rows": rows, "executemany_s": round(many_s, 3),
                   "executemany_us_per_row": round(many_s / rows * 1e6, 2),
                   "executemany_vs_copy": round((many_s / rows) / (copy_s / rows), 1)})
    return result


def run(rows: int = 100_000, slow_rows: int = 10_000) -> dict:
    """Both benchmarks; returns {"sqlite": {...}, "postgres": {...}} with per-row times and ratios."""
    with tempfile.TemporaryDirectory(prefix="spindle-bench-") as folder:
        results = {"sqlite": bench_sqlite(rows, slow_rows, Path(folder))}
    url, stop = start_postgres()
    try:
        results["postgres"] = bench_postgres(rows, slow_rows, url)
    finally:
        stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows for the batch paths")
    parser.add_argument("--slow-rows", type=int, default=10_000, help="rows for the one-at-a-time paths")
    args = parser.parse_args()
    results = run(args.rows, args.slow_rows)
    for backend, figures in results.items():
        print(f"{backend}:")
        for key, value in figures.items():
            print(f"  {key:32} {value}")
    sqlite, postgres = results["sqlite"], results["postgres"]
    print(f"SQLite: one row at a time is {sqlite['one_at_a_time_vs_executemany']}x slower per row than executemany")
    print(f"PostgreSQL: one row at a time is {postgres['one_at_a_time_vs_copy']}x slower per row than COPY; "
          f"executemany is {postgres['executemany_vs_copy']}x")


if __name__ == "__main__":
    main()
