"""Nothing lost: stored work names registered tasks, counters come from the items, saves survive a store outage.

Every fault here is caused for real: a job row naming `builtins:exec` written straight into SQLite
and PostgreSQL, PostgreSQL stopped with `pg_ctl stop -m fast` in the middle of a job, a full tmpfs
as the data folder.
"""
from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from config.settings import load_settings
from config.threading_config import load_threading_config
from tests import queue_workers
from tests.fixtures.postgres import create_database
from tests.queue_postgres import StoppablePostgres
from tests.waiting import wait_until
from utils import task_registry
from utils.services import open_services
from utils.store.sqlite_store import SQLiteStore
from utils.task_registry import UnknownTaskError, register_task, resolve_task, task, task_name
from utils.threading_manager import ThreadingManager

EXEC_INPUT = "open({path!r}, 'w').write('ran')"


@pytest.fixture
def manager():
    config = dataclasses.replace(load_threading_config(), max_workers_per_user=4)
    made = ThreadingManager(config)
    yield made
    made.shutdown(cancel_futures=True)


def _services(tmp_path: Path, manager: ThreadingManager, **env: str):
    return open_services(load_settings({"SPINDLE_DATA_DIR": str(tmp_path), **env}), manager=manager)


def _counted_params(log: Path, delay: float = 0.0) -> dict:
    return {"log": str(log), "delay": delay}


def _executions(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def _assert_stored_once_and_complete(store, job_id: str, total: int) -> None:
    rows = store.item_rows(job_id)
    assert [row["idx"] for row in rows] == list(range(total))  # one row per item
    assert all(row["status"] == "completed" for row in rows), [r for r in rows if r["status"] != "completed"][:3]
    assert [row["result"]["square"] for row in rows] == [n * n for n in range(total)]
    job = store.get_job(job_id)
    assert (job["status"], job["done"], job["failed"]) == ("completed", total, 0)


# --- the registry: the store names tasks, nothing read back is imported -------------------------------

def test_the_registry_resolves_registered_names_and_refuses_everything_else():
    @task("test.registry_demo")
    def demo(item, params):
        return item

    assert resolve_task("test.registry_demo") is demo
    assert task_name(demo) == "test.registry_demo"
    assert resolve_task(f"{demo.__module__}:{demo.__qualname__}") is demo  # its import path is an alias
    for name in ("builtins:exec", "os:system", "", "subprocess:run"):
        with pytest.raises(UnknownTaskError):
            resolve_task(name)
    assert issubclass(UnknownTaskError, ValueError)
    with pytest.raises(ValueError, match="already registered"):
        register_task(print, "test.registry_demo")


def test_two_threads_resolving_a_task_for_the_first_time_both_find_it(tmp_path, monkeypatch):
    """A fresh worker: two threads look up a task whose module is not imported yet. Neither may see the
    registry half loaded (that gave the second one UnknownTaskError while the first was importing)."""
    module = f"spindle_slow_tasks_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "import time\n"
        "from utils.task_registry import task\n"
        "time.sleep(0.3)  # a task module that takes a while to import\n"
        f"@task({module + '.slow'!r})\n"
        "def slow(item, params):\n"
        "    return item\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(task_registry, "KNOWN_TASK_MODULES", (module,))
    monkeypatch.setattr(task_registry, "_known_loaded", False)
    together = threading.Barrier(2)

    def look_up() -> object:
        together.wait(timeout=10)
        return resolve_task(f"{module}.slow")

    with ThreadPoolExecutor(2) as pool:
        found = [future.result(timeout=30) for future in [pool.submit(look_up) for _ in range(2)]]
    assert found[0] is found[1]
    assert found[0](7, {}) == 7


def test_a_sqlite_job_naming_builtins_exec_fails_on_restart_and_runs_nothing(tmp_path, manager):
    marker = tmp_path / "exec-ran"
    services = _services(tmp_path, manager)
    services.close()
    with sqlite3.connect(tmp_path / "spindle.sqlite3") as conn:  # written straight into the file, as an attacker would
        conn.execute("INSERT INTO jobs (id, owner, kind, fn, params, status, total, created_at) "
                     "VALUES ('evil', 'mallory', 'validation', 'builtins:exec', '{}', 'running', 1, 0)")
        conn.execute("INSERT INTO items (job_id, idx, input, status, updated_at) VALUES ('evil', 0, ?, 'pending', 0)",
                     (f'"{EXEC_INPUT.format(path=str(marker))}"',))
    restarted = _services(tmp_path, manager)
    try:
        job = restarted.store.get_job("evil")
        assert job["status"] == "failed"
        assert "'builtins:exec' is not a registered task" in job["error"]
        row = restarted.store.item_rows("evil")[0]
        assert row["status"] == "failed" and "not a registered task" in row["error"]
        assert restarted.store.pending_items("evil") == []
        time.sleep(0.2)
        assert not marker.exists()
    finally:
        restarted.close()


def test_a_postgres_job_naming_builtins_exec_fails_on_restart_and_runs_nothing(postgres_url, tmp_path, manager):
    marker = tmp_path / "exec-ran"
    url = create_database(postgres_url, "exec")
    _services(tmp_path, manager, DATABASE_URL=url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO jobs (id, owner, kind, fn, params, status, total, created_at) "
                     "VALUES ('evil', 'mallory', 'validation', 'builtins:exec', '{}', 'running', 1, 0)")
        conn.execute("INSERT INTO items (job_id, idx, input, status, updated_at) VALUES ('evil', 0, to_jsonb(%s::text), "
                     "'pending', 0)", (EXEC_INPUT.format(path=str(marker)),))
    restarted = _services(tmp_path, manager, DATABASE_URL=url)
    try:
        job = restarted.store.get_job("evil")
        assert job["status"] == "failed" and "'builtins:exec' is not a registered task" in job["error"]
        assert restarted.store.item_counts("evil")["failed"] == 1
        time.sleep(0.2)
        assert not marker.exists()
    finally:
        restarted.close()


def test_a_stored_plain_call_of_an_unregistered_function_fails_its_item_and_runs_nothing(tmp_path, manager):
    marker = tmp_path / "system-ran"
    services = _services(tmp_path, manager)
    services.store.create_job({"id": "call", "owner": "mallory", "kind": "task", "fn": "task.call", "total": 1,
                               "status": "running", "params": {}})
    services.store.add_items("call", [(0, {"fn": "os:system", "args": [f"touch {marker}"], "kwargs": {}})])
    services.close()
    restarted = _services(tmp_path, manager)
    try:
        assert restarted.queue.wait("call", timeout=30)["status"] == "completed"
        row = restarted.store.item_rows("call")[0]
        assert row["status"] == "failed" and "'os:system' is not a registered task" in row["error"]
        assert not marker.exists()
    finally:
        restarted.close()


def test_submitting_a_function_registers_it_and_an_unknown_name_is_refused(tmp_path, manager):
    services = _services(tmp_path, manager)
    try:
        job_id = services.queue.submit_batch(queue_workers.slow_square, [{"n": 3}], owner="ana", kind="test")
        assert services.store.get_job(job_id)["fn"] == "test.slow_square"  # the name, never an import of our choosing
        with pytest.raises(UnknownTaskError):
            services.queue.submit_batch("os:system", ["echo hi"], owner="ana", kind="test")
        services.queue.wait(job_id, timeout=30)
    finally:
        services.close()


# --- counters from items ---------------------------------------------------------------------------------

def test_a_late_chunk_save_can_not_overwrite_a_newer_count(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    store.create_job({"id": "j", "owner": "ana", "total": 6})
    store.add_items("j", [(i, i) for i in range(6)])
    store.save_results("j", [{"idx": i, "status": "completed", "result": i} for i in (3, 4, 5)])
    store.save_results("j", [{"idx": 0, "status": "completed", "result": 0}, {"idx": 1, "status": "failed", "error": "x"}])
    store.save_results("j", [{"idx": 0, "status": "completed", "result": 0}])  # a retried (late) chunk
    job = store.get_job("j")
    assert (job["done"], job["failed"]) == (5, 1)
    assert store.finish_job("j", "completed") is False  # item 2 is pending: never "completed"
    assert store.get_job("j")["status"] == "pending"
    store.save_results("j", [{"idx": 2, "status": "completed", "result": 2}])
    assert store.finish_job("j", "completed") is True
    assert {k: store.get_job("j")[k] for k in ("status", "done", "failed")} == {"status": "completed", "done": 6,
                                                                              "failed": 1}
    store.close()


def test_counters_follow_the_items_on_postgres_with_concurrent_savers(postgres_url):
    from concurrent.futures import ThreadPoolExecutor

    from utils.store.postgres_store import PostgresStore

    store = PostgresStore(create_database(postgres_url, "count"))
    store.create_job({"id": "j", "owner": "ana", "total": 400})
    store.add_items("j", [(i, i) for i in range(400)])
    chunks = [[{"idx": i, "status": "failed" if i % 10 == 0 else "completed", "result": i, "error": None}
               for i in range(start, start + 20)] for start in range(0, 400, 20)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda rows: store.save_results("j", rows), chunks + chunks[:5]))  # some saved twice, late
    job = store.get_job("j")
    assert (job["done"], job["failed"]) == (400, 40)
    store.close()


# --- resubmitting an ended job re-runs only what is unfinished ------------------------------------------

def test_resubmitting_a_cancelled_batch_runs_only_its_unfinished_items(tmp_path, manager):
    log = tmp_path / "runs.log"
    services = _services(tmp_path, manager)
    inputs = [{"n": n} for n in range(40)]  # 0.1 s each on 2 threads: the cancel lands well before the end
    try:
        job_id = services.queue.submit_batch(queue_workers.counted_square, inputs, owner="ana", kind="test",
                                             params=_counted_params(log, 0.1), exec_kind="thread", chunk_size=2)
        assert wait_until(lambda: services.store.item_counts(job_id)["completed"] >= 6, timeout=30)
        services.queue.cancel(job_id)
        assert services.queue.wait(job_id, timeout=30)["status"] == "cancelled"
        services.queue.flush(10)
        done_before = {r["idx"] for r in services.store.item_rows(job_id, status="completed")}
        assert 0 < services.store.item_counts(job_id)["cancelled"] < 40
        again = services.queue.submit_batch(queue_workers.counted_square, inputs, owner="ana", kind="test",
                                            params=_counted_params(log, 0.1), exec_kind="thread", chunk_size=2)
        assert again == job_id
        assert services.queue.wait(job_id, timeout=60)["status"] == "completed"
        runs = _executions(log)
        assert all(runs.count(n) == 1 for n in done_before)  # finished items did not run again
        assert sorted(set(runs)) == list(range(40))
        services.queue.flush(10)
        _assert_stored_once_and_complete(services.store, job_id, 40)
    finally:
        services.close()


def test_a_completed_job_with_pending_items_is_resumed_at_start(tmp_path, manager):
    services = _services(tmp_path, manager)
    store = services.store
    store.create_job({"id": "broken", "owner": "ana", "kind": "test", "fn": "test.slow_square", "total": 5,
                      "status": "completed", "params": {}})  # what the old queue left behind after an outage
    store.add_items("broken", [(n, {"n": n}) for n in range(5)])
    store.save_results("broken", [{"idx": 0, "status": "completed", "result": {"n": 0, "square": 0}}])
    services.close()
    restarted = _services(tmp_path, manager)
    try:
        assert restarted.queue.wait("broken", timeout=30)["status"] == "completed"
        restarted.queue.flush(10)
        _assert_stored_once_and_complete(restarted.store, "broken", 5)
    finally:
        restarted.close()


# --- a store outage: PostgreSQL stopped mid-job ----------------------------------------------------------

@pytest.fixture(scope="module")
def stoppable_postgres():
    server = StoppablePostgres()
    yield server
    server.destroy()


def test_postgres_stopped_mid_job_loses_nothing_and_the_job_completes(stoppable_postgres, tmp_path, manager):
    log = tmp_path / "runs.log"
    total = 40
    services = _services(tmp_path, manager, DATABASE_URL=stoppable_postgres.url, SPINDLE_SAVE_BUFFER_ROWS="8")
    queue = services.queue
    try:
        job_id = queue.submit_batch(queue_workers.counted_square, [{"n": n} for n in range(total)], owner="ana",
                                    kind="test", params=_counted_params(log, 0.05), exec_kind="thread", chunk_size=2)
        assert wait_until(lambda: services.store.item_counts(job_id)["completed"] >= 4, timeout=30)
        stoppable_postgres.stop()
        try:
            assert wait_until(lambda: not queue.store_health().available, timeout=20)
            seen = queue.store_health()
            assert "store unavailable" in seen.message and seen.last_error
            assert queue.get_status(job_id)["status"] == "running"  # the page still gets live progress
            time.sleep(2)
            during = queue.store_health()
            assert during.buffered_rows > 0 and not during.available
        finally:
            stoppable_postgres.start()
        status = queue.wait(job_id, timeout=60)
        queue.flush(30)
        assert status["status"] == "completed"
        assert queue.store_health().available
        _assert_stored_once_and_complete(services.store, job_id, total)
        assert sorted(_executions(log)) == list(range(total))  # nothing ran twice, nothing was dropped
    finally:
        services.close()


# --- a full disk: a small tmpfs as the SQLite data folder ------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    folder = tmp_path / "tmpfs"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], check=True)
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_holds_saves_until_space_returns_and_nothing_is_lost(small_disk, tmp_path, manager):
    log = tmp_path / "runs.log"  # outside the small disk
    total = 40
    services = _services(small_disk, manager, SPINDLE_SAVE_BUFFER_ROWS="6")
    queue = services.queue
    try:
        job_id = queue.submit_batch(queue_workers.counted_square, [{"n": n} for n in range(total)], owner="ana",
                                    kind="test", params=_counted_params(log, 0.03),
                                    exec_kind="thread", chunk_size=2)
        filler = _fill(small_disk)
        assert wait_until(lambda: not queue.store_health().available, timeout=30)
        health = queue.store_health()
        assert "store unavailable" in health.message and "full" in health.last_error
        assert wait_until(lambda: queue.store_health().waiting_chunks > 0, timeout=30)  # the buffer is full: chunks wait
        assert queue.get_status(job_id)["status"] == "running"
        filler.unlink()
        assert queue.wait(job_id, timeout=60)["status"] == "completed"
        queue.flush(30)
        assert queue.store_health().available
        _assert_stored_once_and_complete(services.store, job_id, total)
        assert sorted(_executions(log)) == list(range(total))
    finally:
        services.close()
    with sqlite3.connect(small_disk / "spindle.sqlite3") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert os.path.ismount(small_disk)


def test_a_server_that_lost_its_lease_stops_and_leaves_the_rest_to_the_new_holder(tmp_path, manager):
    from utils.task_queue import AsyncTaskQueue

    store = SQLiteStore(tmp_path / "s.sqlite3")
    queue = AsyncTaskQueue(manager, store, lease_s=0.6, server_id="server-a", takeover=False)
    try:
        job_id = queue.submit_batch(queue_workers.slow_square, [{"n": n} for n in range(400)], owner="ana",
                                    kind="test", params={"delay": 0.05}, exec_kind="thread", chunk_size=1)
        assert wait_until(lambda: store.item_counts(job_id)["completed"] > 0)
        store.update_job(job_id, lease_expires=0.0)  # as if server-a had stalled past its lease...
        assert store.claim_job(job_id, "server-b", 60)  # ...and server-b took the job over
        assert wait_until(lambda: job_id not in queue._live, timeout=10)  # server-a noticed and stopped
        queue.flush(10)
        counts = store.item_counts(job_id)
        assert counts["cancelled"] == 0 and counts["pending"] > 0  # the rest is server-b's to run
        job = store.get_job(job_id)
        assert (job["status"], job["lease_owner"]) == ("running", "server-b")
    finally:
        queue.close()
        store.close()


def test_closing_the_services_stops_the_queue_intake_that_stores_into_them(tmp_path, manager, rabbitmq):
    from utils.intake import running_intake, start_intake, stop_intake

    queue_name = f"q-{uuid.uuid4().hex[:8]}"
    services = _services(tmp_path / "app", manager, RABBITMQ_URL=rabbitmq.url, VOICE_PROCESSING_QUEUE=queue_name)
    other = _services(tmp_path / "other", manager)
    try:
        intake = start_intake(services.settings, services.manager, services.store)
        assert intake is not None and running_intake() is intake
        other.close()  # another store's services (a script's, a test's) leave the app's intake running
        assert running_intake() is intake
        services.close()  # the intake stops before its store closes
        assert running_intake() is None
        assert intake.state == "stopped"
    finally:
        stop_intake(5.0)


def test_a_batch_submitted_to_a_full_disk_fails_plainly_stores_nothing_and_stops(small_disk, tmp_path, manager):
    """A new job's run starts while its items are written: when the write fails, the submit says why,
    no job is left without its items, and the run stops. The same batch submitted later runs in full."""
    log = tmp_path / "runs.log"  # outside the small disk
    total = 3000
    inputs = [{"n": n, "pad": "x" * 200} for n in range(total)]
    services = _services(small_disk, manager)
    queue = services.queue
    try:
        filler = _fill(small_disk)
        with pytest.raises(sqlite3.OperationalError, match="full"):
            queue.submit_batch(queue_workers.counted_square, inputs, owner="ana", kind="test",
                               params=_counted_params(log, 0.01), exec_kind="thread")
        assert services.store.list_jobs(owner="ana") == []  # nothing half stored
        time.sleep(0.3)
        ran = len(_executions(log))  # a few items may have run while the items were being written
        time.sleep(0.5)
        assert len(_executions(log)) == ran  # its run was stopped
        filler.unlink()
        job_id = queue.submit_batch(queue_workers.counted_square, inputs, owner="ana", kind="test",
                                    params=_counted_params(log, 0.0), exec_kind="thread")
        assert queue.wait(job_id, timeout=60)["status"] == "completed"
        _assert_stored_once_and_complete(services.store, job_id, total)
    finally:
        services.close()
