"""Durable jobs: results stored per chunk, idempotent submit, cancel, fair shares, resume after SIGKILL."""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config.settings import load_settings
from config.threading_config import load_threading_config
from tests import queue_workers
from tests.waiting import wait_until
from utils.services import open_services
from utils.threading_manager import ThreadingManager

ROOT = Path(__file__).resolve().parents[1]
FN = "tests.queue_workers:slow_square"  # the old import-path name of a registered task still works


@pytest.fixture
def services(tmp_path):
    config = dataclasses.replace(load_threading_config(), max_workers_per_user=2)
    manager = ThreadingManager(config)
    opened = open_services(load_settings({"SPINDLE_DATA_DIR": str(tmp_path)}), manager=manager)
    yield opened
    manager.shutdown(cancel_futures=True)
    opened.close()


def items(count: int, bad: set[int] = frozenset()) -> list[dict]:
    return [{"n": n, "bad": n in bad} for n in range(count)]


def test_a_batch_is_stored_item_by_item_with_failures_isolated(services):
    queue = services.queue
    job_id = queue.submit_batch(FN, items(30, bad={4, 17}), owner="ana", kind="test")
    status = queue.wait(job_id, timeout=60)
    assert status["status"] == "completed"
    assert (status["done"], status["failed"]) == (30, 2)
    rows = queue.item_rows(job_id)
    assert [r["idx"] for r in rows] == list(range(30))
    assert rows[5]["result"] == {"n": 5, "square": 25}
    assert rows[4]["status"] == "failed" and "item 4 is marked bad" in rows[4]["error"]
    assert services.store.get_job(job_id)["finished_at"] is not None


def test_a_new_job_runs_while_its_items_are_stored_and_counts_every_item_once(services):
    """The run starts before the job's 5,000 items are written; results finished meanwhile are held, then
    stored: when submit returns the job and all its items are in the store, and no result is lost."""
    queue, store = services.queue, services.store
    total = 5_000
    job_id = queue.submit_batch(FN, items(total), owner="ana", kind="test", exec_kind="thread")
    job = store.get_job(job_id)
    assert job is not None and job["total"] == total
    assert sum(store.item_counts(job_id).values()) == total  # never a stored job without its items
    status = queue.wait(job_id, timeout=60)
    assert (status["status"], status["done"], status["failed"]) == ("completed", total, 0)
    rows = queue.item_rows(job_id)
    assert [row["idx"] for row in rows] == list(range(total))
    assert all(row["status"] == "completed" and row["result"]["n"] == row["idx"] for row in rows)
    empty = queue.submit_batch(FN, [], owner="ana", kind="test")
    assert queue.wait(empty, timeout=10)["status"] == "completed"


def test_results_reach_the_store_while_the_job_runs(services):
    queue = services.queue
    job_id = queue.submit_batch(FN, items(60), owner="ana", kind="test", params={"delay": 0.03},
                                exec_kind="thread", chunk_size=5)
    deadline = time.monotonic() + 30
    partial = 0
    while time.monotonic() < deadline:
        counts = services.store.item_counts(job_id)
        if 0 < counts["completed"] < 60:
            partial = counts["completed"]
            break
        time.sleep(0.01)
    assert partial, "no partial results were stored before the job finished"
    assert queue.wait(job_id, timeout=60)["status"] == "completed"


def test_submitting_the_same_batch_again_returns_the_same_job(services):
    queue = services.queue
    first = queue.submit_batch(FN, items(10), owner="ana", kind="test", params={"delay": 0.01})
    second = queue.submit_batch(FN, items(10), owner="ana", kind="test", params={"delay": 0.01})
    other_user = queue.submit_batch(FN, items(10), owner="ben", kind="test", params={"delay": 0.01})
    assert first == second
    assert other_user != first
    queue.wait(first, timeout=60)
    assert len(queue.item_rows(first)) == 10
    assert len(services.store.list_jobs(owner="ana")) == 1


def test_cancel_marks_every_item_that_did_not_run(services):
    queue = services.queue
    job_id = queue.submit_batch(FN, items(400), owner="ana", kind="test", params={"delay": 0.05},
                                exec_kind="thread", chunk_size=2)
    assert wait_until(lambda: queue.get_status(job_id)["done"] > 0, timeout=30)
    assert queue.cancel(job_id)
    status = queue.wait(job_id, timeout=30)
    assert status["status"] == "cancelled"
    counts = services.store.item_counts(job_id)
    assert counts["pending"] == 0
    assert counts["cancelled"] > 0
    assert counts["completed"] + counts["cancelled"] + counts["failed"] == 400


def test_a_plain_task_returns_its_result(services):
    task_id = services.queue.submit(queue_workers.add, 2, 3)
    services.queue.wait(task_id, timeout=30)
    assert services.queue.get_result(task_id) == 5
    assert services.queue.item_rows(task_id)[0]["result"] == 5


def test_a_flooding_user_does_not_starve_another(services):
    queue, manager = services.queue, services.manager
    flood = [queue.submit_batch(FN, items(200), owner="flooder", kind="test", params={"delay": 0.05, "k": k},
                                exec_kind="thread", chunk_size=2) for k in range(6)]
    assert wait_until(lambda: any(row["user"] == "flooder" and row["running"] for row in manager.user_stats()))
    lone = queue.submit_batch(FN, items(20), owner="lone", kind="test", params={"delay": 0.02},
                              exec_kind="thread", chunk_size=2)
    assert queue.wait(lone, timeout=60)["status"] == "completed"
    unfinished = [j for j in flood if services.store.get_job(j)["status"] != "completed"]
    assert unfinished, "the lone user's job should finish while the flood is still running"
    for job_id in flood:
        queue.cancel(job_id)
        queue.wait(job_id, timeout=60)


def test_a_killed_server_resumes_without_losing_or_repeating_items(tmp_path):
    total = 120
    command = [sys.executable, str(ROOT / "tests" / "queue_resume_script.py"), str(tmp_path), str(total)]
    first = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    job_id = first.stdout.readline().strip()
    settings = load_settings({"SPINDLE_DATA_DIR": str(tmp_path)})
    from utils.store import open_store

    store = open_store(settings)
    deadline = time.monotonic() + 60
    while store.item_counts(job_id)["completed"] < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    done_before = store.item_counts(job_id)["completed"]
    assert 0 < done_before < total
    assert store.get_job(job_id)["status"] == "running"

    second = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert second.stdout.split()[0] == job_id  # the resubmitted batch is the same job
    rows = store.item_rows(job_id)
    assert [r["idx"] for r in rows] == list(range(total))
    assert all(r["status"] == "completed" for r in rows)
    assert [r["result"]["square"] for r in rows] == [n * n for n in range(total)]
    assert store.get_job(job_id)["status"] == "completed"
    store.close()


def test_a_user_who_closed_their_tab_keeps_one_worker_until_they_return(services):
    manager, queue = services.manager, services.queue
    total = manager.config.max_total_workers

    def row(user: str) -> dict:
        return next(r for r in manager.user_stats() if r["user"] == user)

    manager.set_owner_present("ana", True)
    manager.set_owner_present("ana", True)
    manager.set_owner_present("ana", False)  # one of two tabs closed: still here
    job_id = queue.submit_batch(FN, items(400), owner="ana", kind="test", params={"delay": 0.05},
                                exec_kind="thread", chunk_size=1)
    assert wait_until(lambda: row("ana")["running"] >= 2)
    assert row("ana")["limit"] == total  # alone on the server: every slot
    manager.set_owner_present("ben", True)
    other = queue.submit_batch(FN, items(400), owner="ben", kind="test", params={"delay": 0.05, "ben": 1},
                               exec_kind="thread", chunk_size=1)
    manager.set_owner_present("ana", False)  # the last tab closed while ben, who is here, waits
    assert wait_until(lambda: row("ana")["running"] <= 1)
    assert (row("ana")["limit"], row("ana")["present"]) == (1, False)
    assert wait_until(lambda: row("ana")["running"] == 1)  # her job goes on, on one worker
    manager.set_owner_present("ana", True)
    assert row("ana")["limit"] > 1
    for job in (job_id, other):
        queue.cancel(job)
        queue.wait(job, timeout=30)


def test_the_process_wide_services_open_once_and_reopen_after_close(tmp_path, monkeypatch):
    """The app, scripts and the owner's get_async_queue() share one Services; closing them lets a later call reopen."""
    from concurrent.futures import ThreadPoolExecutor

    from utils import services as process_wide

    for name, value in {"SPINDLE_DATA_DIR": str(tmp_path), "DATABASE_URL": "", "SUPABASE_URL": "",
                        "RABBITMQ_URL": ""}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(process_wide, "_services", None)
    with ThreadPoolExecutor(4) as pool:
        opened = list(pool.map(lambda _: process_wide.get_services(), range(4)))
    try:
        assert all(each is opened[0] for each in opened)
        assert process_wide.get_async_queue() is opened[0].queue
        assert opened[0].settings.data_dir == tmp_path
    finally:
        process_wide.close_services()
    again = process_wide.get_services()
    try:
        assert again is not opened[0]
    finally:
        process_wide.close_services()


def test_finish_listeners_hear_of_a_stored_job_and_a_failing_one_harms_nothing(services):
    queue = services.queue
    heard: list[tuple[str, str]] = []

    def listener(job_id: str) -> None:
        heard.append((job_id, queue.store.get_job(job_id)["status"]))  # the final state is stored by now

    def broken(_job_id: str) -> None:
        raise RuntimeError("a listener's own bug")

    queue.add_finish_listener("broken", broken)
    queue.add_finish_listener("pages", lambda _job_id: heard.append(("replaced", "")))
    queue.add_finish_listener("pages", listener)  # the same name again replaces the earlier listener
    job_id = queue.submit_batch(FN, items(6), owner="ana", kind="test")
    assert queue.wait(job_id, timeout=60)["status"] == "completed"
    assert wait_until(lambda: heard == [(job_id, "completed")])
    second = queue.submit_batch(FN, items(3), owner="ana", kind="test")
    assert queue.wait(second, timeout=60)["status"] == "completed"  # the queue goes on after the broken one
    assert wait_until(lambda: len(heard) == 2)
