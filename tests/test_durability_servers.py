"""Several servers on one store: leases keep each job on one server; a killed server's jobs are taken over.

Real server processes (tests/queue_server_script.py: services + queue, no page) share one SQLite
file or one PostgreSQL database. Each execution of an item appends a line to a log, so the tests
count executions, not just stored rows. Server ids are set apart, as on two machines, so takeover
waits for the lease to expire (SPINDLE_LEASE_SECONDS=2) instead of noticing a dead local process.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.fixtures.postgres import create_database
from tests.waiting import wait_until
from utils.store.postgres_store import PostgresStore
from utils.store.sqlite_store import SQLiteStore

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "queue_server_script.py"
LEASE_S = "2"
JOBS, ITEMS = 6, 20


def _make_jobs(store, log: Path, delay: float, chunk_size: int = 2) -> list[str]:
    """Unclaimed jobs, as a page on some server left them: whichever server claims one runs it."""
    ids = []
    for number in range(JOBS):
        job_id = f"job{number}"
        params = {"log": str(log), "delay": delay,
                  "_exec": {"pool": None, "kind": "thread", "chunk_size": chunk_size, "timeout": None, "retries": 0}}
        assert store.create_job({"id": job_id, "owner": f"user{number % 2}", "kind": "test",
                                 "fn": "test.counted_square", "params": params, "total": ITEMS, "status": "pending"})
        store.add_items(job_id, [(n, {"n": number * 1000 + n}) for n in range(ITEMS)])
        ids.append(job_id)
    return ids


def _server(data_dir: Path, server_id: str, database_url: str = "", **extra_env: str) -> subprocess.Popen:
    env = {**os.environ, "SPINDLE_LEASE_SECONDS": LEASE_S, "DATABASE_URL": database_url, **extra_env}
    return subprocess.Popen([sys.executable, str(SCRIPT), str(data_dir), server_id], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _executions(log: Path) -> Counter:
    return Counter(int(line) for line in log.read_text().split()) if log.exists() else Counter()


def _assert_every_item_stored_once(store, ids: list[str]) -> None:
    for job_id in ids:
        rows = store.item_rows(job_id)
        assert [row["idx"] for row in rows] == list(range(ITEMS))
        assert all(row["status"] == "completed" for row in rows), job_id
        job = store.get_job(job_id)
        assert (job["status"], job["done"], job["failed"]) == ("completed", ITEMS, 0)
        assert job["lease_owner"] is None


def _stores(tmp_path: Path, postgres_url: str | None):
    if postgres_url is None:
        return SQLiteStore(tmp_path / "spindle.sqlite3"), ""
    url = create_database(postgres_url, "servers")
    return PostgresStore(url), url


@pytest.fixture(params=["sqlite", "postgres"])
def shared_store(request, tmp_path):
    postgres_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    store, url = _stores(tmp_path, postgres_url)
    yield store, url
    store.close()


def test_two_live_servers_never_run_an_item_twice(shared_store, tmp_path):
    store, url = shared_store
    log = tmp_path / "runs.log"
    ids = _make_jobs(store, log, delay=0.05)
    servers = [_server(tmp_path, "server-a", url), _server(tmp_path, "server-b", url)]
    for server in servers:
        _, err = server.communicate(timeout=90)
        assert server.returncode == 0, err[-3000:]
    runs = _executions(log)
    assert set(runs) == {number * 1000 + n for number in range(JOBS) for n in range(ITEMS)}
    assert max(runs.values()) == 1, [item for item, count in runs.items() if count > 1][:5]
    _assert_every_item_stored_once(store, ids)
    ran_on = {row["result"]["pid"] for job_id in ids for row in store.item_rows(job_id)}
    assert ran_on == {server.pid for server in servers}  # both servers took jobs: they really competed


def test_a_killed_server_s_jobs_are_finished_by_the_other_after_its_lease(shared_store, tmp_path):
    store, url = shared_store
    log = tmp_path / "runs.log"
    ids = _make_jobs(store, log, delay=0.05, chunk_size=1)
    few_workers = {"MAX_TOTAL_WORKERS": "3"}  # each job takes a while, so A is surely in the middle of one
    first = _server(tmp_path, "server-a", url, **few_workers)
    assert first.stdout.readline().strip() == "ready"  # A has claimed its first jobs
    second = _server(tmp_path, "server-b", url, **few_workers)
    assert second.stdout.readline().strip() == "ready"

    def a_is_mid_job() -> list[str]:
        return [j for j in ids if store.get_job(j)["lease_owner"] == "server-a"
                and 0 < store.item_counts(j)["completed"] and store.item_counts(j)["pending"] > 2]

    assert wait_until(a_is_mid_job, timeout=60)
    held_by_a = a_is_mid_job()
    assert max(_executions(log).values()) == 1  # while both live, nothing ran twice
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert held_by_a and sum(store.item_counts(j)["pending"] for j in held_by_a) > 0  # A died with work left
    _, err = second.communicate(timeout=90)
    assert second.returncode == 0, err[-3000:]
    _assert_every_item_stored_once(store, ids)
    runs = _executions(log)
    assert set(runs) == {number * 1000 + n for number in range(JOBS) for n in range(ITEMS)}


def test_a_server_killed_mid_write_leaves_a_sound_sqlite_file_and_a_restart_finishes(tmp_path):
    store = SQLiteStore(tmp_path / "spindle.sqlite3")
    log = tmp_path / "runs.log"
    params = {"log": str(log), "delay": 0.0,
              "_exec": {"pool": None, "kind": "thread", "chunk_size": 1, "timeout": None, "retries": 0}}
    store.create_job({"id": "big", "owner": "ana", "kind": "test", "fn": "test.counted_square", "params": params,
                      "total": 3000})
    store.add_items("big", [(n, {"n": n}) for n in range(3000)])
    first = _server(tmp_path, "server-a")  # one save per item, back to back: the kill lands inside a write
    assert first.stdout.readline().strip() == "ready"
    assert wait_until(lambda: store.item_counts("big")["completed"] >= 200, timeout=60)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    with sqlite3.connect(tmp_path / "spindle.sqlite3") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert store.item_counts("big")["pending"] > 0
    restarted = _server(tmp_path, "server-b")
    _, err = restarted.communicate(timeout=90)
    assert restarted.returncode == 0, err[-3000:]
    rows = store.item_rows("big")
    assert len(rows) == 3000 and all(row["status"] == "completed" for row in rows)
    job = store.get_job("big")
    assert (job["status"], job["done"]) == ("completed", 3000)
    with sqlite3.connect(tmp_path / "spindle.sqlite3") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.close()
