"""Job history through the one door: finished jobs, their failures and tracebacks, retry and cancel.

Real jobs on a real store (SQLite in tmp_path), called the way the Performance page calls the door:
the owner reads and retries their own jobs, an admin reads everyone's, another visitor gets "not found".
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from config.settings import load_settings
from streamlit_app.identity import Identity
from streamlit_app.jobs import JobDoor, JobNotFound
from tests import test_durability, test_security
from tests.waiting import wait_until
from utils.intake import INTAKE_OWNER
from utils.task_registry import task

ALICE = Identity("anon:" + "c" * 32, "alice", is_admin=False, mode="anonymous")
BOB = Identity("anon:" + "d" * 32, "bob", is_admin=False, mode="anonymous")
ADMIN = Identity("oidc:sub-admin", "admin@example.test", is_admin=True, mode="signed-in")
SECRET = "hunter2-secret"

door = test_security.door  # a door on a real SQLite store (this module gets its own instance)
small_disk = test_durability.small_disk  # a small tmpfs, filled for real

CALLS: list[int] = []  # item numbers the task ran, in this process
_calls_lock = threading.Lock()  # guards CALLS


@task("test.history.flaky")
def flaky(item: dict, params: dict) -> dict:
    """Fails the items marked "fail" until the flag file exists; the reason quotes a connection string."""
    with _calls_lock:
        CALLS.append(item["n"])
    time.sleep(float(params.get("pause", 0.0)))
    if item.get("fail") and not Path(params["flag"]).exists():
        raise ValueError(f"could not reach postgresql://spindle:{SECRET}@db.example/items for item {item['n']}")
    return {"n": item["n"]}


@pytest.fixture(scope="module")
def flag(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("history-flag") / "fixed"


@pytest.fixture(scope="module")
def failed_job(door, flag) -> str:
    """Alice's finished job: six items, items 1 and 4 failed."""
    items = [{"n": n, "fail": n in (1, 4)} for n in range(6)]
    job_id = door.services.queue.submit_batch("test.history.flaky", items, owner=ALICE.owner_id, kind="history",
                                              params={"flag": str(flag)}, exec_kind="thread")
    final = door.services.queue.wait(job_id, timeout=30)
    assert (final["status"], final["done"], final["failed"]) == ("completed", 6, 2)
    return job_id


def test_the_owner_sees_the_finished_job_with_its_failures_and_masked_tracebacks(door, failed_job):
    row = next(r for r in door.job_history(ALICE) if r["job"] == failed_job)
    assert (row["failed"], row["retryable"], row["stored"]) == (2, 2, True)
    failures = door.job_failures(ALICE, failed_job)
    assert sorted(f["item"] for f in failures) == [1, 4]
    assert all("could not reach" in f["reason"] for f in failures)
    assert any("ValueError" in f["traceback"] for f in failures)  # kept, for the owner to open
    assert SECRET not in repr(failures)  # the connection string's password is masked
    assert door.slowest_items(ALICE, failed_job)


def test_another_visitor_can_neither_see_retry_nor_cancel_the_job(door, failed_job):
    assert failed_job not in [r["job"] for r in door.job_history(BOB)]
    for action in (door.job_failures, door.slowest_items, door.retry_failed, door.cancel_job):
        with pytest.raises(JobNotFound):
            action(BOB, failed_job)
    with pytest.raises(JobNotFound):  # a missing id answers the same
        door.job_failures(BOB, "0" * 16)


def test_an_admin_reads_everyones_history_but_retries_only_their_own(door, failed_job):
    assert failed_job in [r["job"] for r in door.job_history(ADMIN)]
    assert len(door.job_failures(ADMIN, failed_job)) == 2
    with pytest.raises(JobNotFound):
        door.retry_failed(ADMIN, failed_job)


def test_retry_runs_only_the_failed_items_again(door, failed_job, flag):
    flag.write_text("fixed")
    with _calls_lock:
        CALLS.clear()
    again = door.retry_failed(ALICE, failed_job)
    assert again and again != failed_job
    final = door.services.queue.wait(again, timeout=30)
    assert (final["status"], final["total"], final["done"], final["failed"]) == ("completed", 2, 2, 0)
    assert sorted(CALLS) == [1, 4]
    assert door.retry_failed(ALICE, again) is None  # nothing failed: nothing to retry


def _odd_fails(n: int) -> int:
    if n % 2:
        raise RuntimeError(f"odd item {n}")
    return n


def test_a_job_run_only_on_the_manager_retries_its_failures_for_its_owner(door):
    job = door.services.manager.map(_odd_fails, range(6), owner=ALICE.owner_id, backend="thread")
    job.result()
    assert wait_until(lambda: any(r["job"] == job.id for r in door.job_history(ALICE)), 10)
    assert [f["item"] for f in door.job_failures(ALICE, job.id)] == [1, 3, 5]
    with pytest.raises(JobNotFound):
        door.retry_failed(BOB, job.id)
    again = door.services.manager.job(door.retry_failed(ALICE, job.id))
    assert again.owner == ALICE.owner_id and again.total == 3


def test_only_the_owner_cancels_a_running_job(door, flag):
    items = [{"n": n} for n in range(200)]
    job_id = door.services.queue.submit_batch("test.history.flaky", items, owner=ALICE.owner_id, kind="history",
                                              params={"flag": str(flag), "pause": 0.05}, exec_kind="thread",
                                              max_workers=1, chunk_size=1)
    with pytest.raises(JobNotFound):
        door.cancel_job(BOB, job_id)
    assert door.status(ALICE, job_id)["status"] == "running"
    assert door.cancel_job(ALICE, job_id) is True
    assert door.services.queue.wait(job_id, timeout=30)["status"] == "cancelled"


def test_personal_settings_are_kept_with_the_durable_job_and_tune_only_it(door, failed_job, flag):
    door.set_personal_settings(ALICE, workers=2, chunk_size=5)
    try:
        again = door.rerun(ALICE, failed_job)
        stored = door.services.store.get_job(again)["params"]["_exec"]
        assert (stored["max_workers"], stored["chunk_size"]) == (2, 5)  # a resumed job keeps them
        door.services.queue.wait(again, timeout=30)
    finally:
        door.set_personal_settings(ALICE, workers=None, chunk_size=None)
    items = [{"n": n} for n in range(100)]
    slow = door.services.queue.submit_batch("test.history.flaky", items, owner=BOB.owner_id, kind="history",
                                            params={"flag": str(flag), "pause": 0.02}, exec_kind="thread")
    other = door.services.queue.submit_batch("test.history.flaky", items[:50], owner=ALICE.owner_id,
                                             kind="history", params={"flag": str(flag), "pause": 0.02},
                                             exec_kind="thread")
    door.services.queue.tune_job(slow, max_workers=1, chunk_size=3)
    live = door.services.manager.job(slow)
    assert (live.max_workers, live.explicit_chunk_size) == (1, 3)
    assert door.services.manager.job(other).max_workers is None  # Alice's job is untouched
    assert door.services.store.get_job(slow)["params"]["_exec"]["max_workers"] == 1
    door.cancel_job(BOB, slow)
    door.cancel_job(ALICE, other)


def test_admins_read_the_queue_intakes_jobs_and_visitors_do_not(door, flag):
    job_id = door.services.queue.submit_batch("test.history.flaky", [{"n": 1}], owner=INTAKE_OWNER, kind="intake-x",
                                              params={"flag": str(flag)}, exec_kind="thread")
    door.services.queue.wait(job_id, timeout=30)
    assert job_id in [j["id"] for j in door.my_jobs(ADMIN)]
    assert door.latest_job(ADMIN, "intake-x") == job_id
    assert door.status(ADMIN, job_id)["status"] == "completed"
    assert job_id not in [j["id"] for j in door.my_jobs(BOB)]
    assert door.latest_job(BOB, "intake-x") is None
    assert door.status(BOB, job_id) is None


def test_worker_times_and_store_health_are_shown_without_owners(door):
    door.services.manager.parallel_map(_odd_fails, [0, 2, 4], backend="thread", owner=ALICE.owner_id)
    rows = door.worker_times("default")
    assert rows and {"worker", "busy s", "waiting for work s", "busy share"} <= set(rows[0])
    assert door.store_problem() is None  # the store answers: nothing to warn about


def test_the_intake_panels_dead_letter_reasons_are_masked(door):
    from streamlit_app import intake_status
    from utils.intake import CACHE_NAMESPACE

    key = f"dead-letters:{door.services.settings.voice_processing_queue}"
    door.services.store.cache_put(CACHE_NAMESPACE, key, [
        {"at": time.time(), "job_id": "j1", "message_id": "m1",
         "reason": f"could not open postgresql://spindle:{SECRET}@db.example/items"}])
    rows = intake_status._stored_dead_letters(door.services)
    assert rows and "could not open" in rows[0]["reason"] and SECRET not in rows[0]["reason"]


def test_a_full_disk_is_told_to_every_visitor_through_the_door(small_disk, flag):
    from utils.services import open_services

    settings = load_settings(env={"SPINDLE_DATA_DIR": str(small_disk), "SPINDLE_SAVE_BUFFER_ROWS": "6"})
    services = open_services(settings)
    on_small_disk = JobDoor(services)
    try:
        assert on_small_disk.store_problem() is None
        job_id = services.queue.submit_batch("test.history.flaky", [{"n": n} for n in range(40)],
                                             owner=ALICE.owner_id, kind="history",
                                             params={"flag": str(flag), "pause": 0.03}, exec_kind="thread",
                                             chunk_size=2)
        filler = test_durability._fill(small_disk)
        assert wait_until(lambda: on_small_disk.store_problem() is not None, timeout=30)
        assert "store unavailable" in on_small_disk.store_problem()
        filler.unlink()
        assert services.queue.wait(job_id, timeout=60)["status"] == "completed"
        services.queue.flush(30)
        assert on_small_disk.store_problem() is None
    finally:
        services.close()
