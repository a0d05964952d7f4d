"""The behaviour the task queue and pages rely on, checked on every backend.

SQLite runs on a real file, PostgreSQL on the real server from the
`postgres_url` fixture, Supabase through the real client against the local
stand-in server (tests/fixtures/supabase_server.py). Each test gets an empty store.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.fixtures.postgres import create_database
from tests.fixtures.supabase_server import supabase_server  # noqa: F401  (fixture)
from utils.store.base import ITEM_STATUSES, MIGRATIONS, Store
from utils.store.postgres_store import PostgresStore
from utils.store.sqlite_store import SQLiteStore
from utils.store.supabase_store import SupabaseStore

SQL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
ALL_BACKENDS = [*SQL_BACKENDS, pytest.param("supabase", marks=pytest.mark.postgres)]


def _factory(request: pytest.FixtureRequest, tmp_path):
    """A function that opens (or reopens) the same store; everything opened is closed after the test."""
    backend = request.param
    if backend == "sqlite":
        path = tmp_path / "spindle.sqlite3"
        make = lambda: SQLiteStore(path)  # noqa: E731
    elif backend == "postgres":
        url = create_database(request.getfixturevalue("postgres_url"))
        make = lambda: PostgresStore(url)  # noqa: E731
    else:
        server = request.getfixturevalue("supabase_server")
        make = lambda: SupabaseStore(server.url, server.key)  # noqa: E731
    opened: list[Store] = []

    def open_store() -> Store:
        opened.append(make())
        return opened[-1]

    request.addfinalizer(lambda: [s.close() for s in opened])
    return open_store


@pytest.fixture(params=ALL_BACKENDS)
def store(request, tmp_path) -> Store:
    return _factory(request, tmp_path)()


@pytest.fixture(params=SQL_BACKENDS)
def sql_store_factory(request, tmp_path):
    return _factory(request, tmp_path)


def _job(job_id: str, owner: str = "ana", **extra) -> dict:
    return {"id": job_id, "owner": owner, "kind": "phone", "fn": "utils.validation:check_phone",
            "params": {"region": "GB", "fields": ["phone"]}, **extra}


# --- jobs -------------------------------------------------------------------------------------------

def test_creating_a_job_twice_is_refused_and_changes_nothing(store):
    assert store.create_job(_job("j1", idem_key="upload-42", total=3)) is True
    assert store.create_job(_job("j1", kind="other")) is False  # same id
    assert store.create_job(_job("j2", idem_key="upload-42")) is False  # same owner and key
    assert store.get_job("j1")["kind"] == "phone"
    assert store.get_job("j2") is None
    assert store.find_job_by_key("ana", "upload-42")["id"] == "j1"
    assert store.find_job_by_key("ana", "no-such-key") is None


def test_idempotency_keys_are_per_owner_and_optional(store):
    assert store.create_job(_job("a1", owner="ana", idem_key="k"))
    assert store.create_job(_job("b1", owner="ben", idem_key="k"))  # another owner may reuse the key
    assert store.create_job(_job("n1"))  # jobs without a key never collide
    assert store.create_job(_job("n2"))
    assert store.find_job_by_key("ben", "k")["id"] == "b1"


def test_a_job_reads_back_as_written_and_updates_in_place(store):
    store.create_job(_job("j1", total=10, idem_key="x"))
    job = store.get_job("j1")
    assert job["params"] == {"region": "GB", "fields": ["phone"]}
    assert (job["status"], job["total"], job["done"], job["failed"]) == ("pending", 10, 0, 0)
    assert isinstance(job["created_at"], float) and job["started_at"] is None

    store.update_job("j1", status="running", started_at=1700000000.5, backend_used="threads")
    store.update_job("j1", done=7, failed=3, status="completed", finished_at=1700000009.25, error="3 rows failed")
    job = store.get_job("j1")
    assert (job["status"], job["done"], job["failed"], job["backend_used"]) == ("completed", 7, 3, "threads")
    assert job["started_at"] == 1700000000.5 and job["finished_at"] == 1700000009.25
    assert job["error"] == "3 rows failed"
    assert store.get_job("missing") is None


def test_bad_job_fields_are_rejected_before_reaching_the_database(store):
    with pytest.raises(ValueError, match="status"):
        store.create_job(_job("j1", status="paused"))
    store.create_job(_job("j1"))
    with pytest.raises(ValueError, match="unknown job fields"):
        store.update_job("j1", colour="red")
    with pytest.raises(ValueError, match="status"):
        store.update_job("j1", status="done")


def test_jobs_are_listed_newest_first_with_filters(store):
    for number, (owner, status, kind) in enumerate(
        [("ana", "completed", "phone"), ("ben", "running", "phone"), ("ana", "failed", "email"), ("ana", "running", "phone")]
    ):
        store.create_job(_job(f"j{number}", owner=owner, status=status, kind=kind, created_at=1000.0 + number))
    assert [j["id"] for j in store.list_jobs()] == ["j3", "j2", "j1", "j0"]
    assert [j["id"] for j in store.list_jobs(owner="ana")] == ["j3", "j2", "j0"]
    assert [j["id"] for j in store.list_jobs(statuses=["running", "failed"])] == ["j3", "j2", "j1"]
    assert [j["id"] for j in store.list_jobs(owner="ana", kind="phone")] == ["j3", "j0"]
    assert [j["id"] for j in store.list_jobs(limit=2)] == ["j3", "j2"]
    assert store.list_jobs(statuses=[]) == []


# --- items ------------------------------------------------------------------------------------------

INPUTS = ["+44 20 7946 0958", 42, None, ["a", "b"], {"name": "Zoë", "note": "✓ ünïcode"}]


def test_items_keep_any_json_input_and_duplicates_are_ignored(store):
    store.create_job(_job("j1"))
    assert store.add_items("j1", enumerate(INPUTS)) == len(INPUTS)
    assert store.add_items("j1", [(0, "changed"), (5, "new")]) == 1
    assert store.pending_items("j1") == [*enumerate(INPUTS), (5, "new")]



def test_values_from_pandas_are_stored_as_plain_json_everywhere(store):
    store.create_job(_job("j1", params={"limit": np.int64(5)}))
    store.add_items("j1", [(0, {"phone": "123", "age": np.int64(7), "score": float("nan")}), (1, float("nan"))])
    store.save_results("j1", [{"idx": 0, "status": "completed", "result": {"ratio": np.float64("inf"), "n": np.int32(3)}}])
    assert store.get_job("j1")["params"] == {"limit": 5}
    assert store.pending_items("j1") == [(1, None)]  # JSON has no NaN: missing values become null
    row = store.item_rows("j1")[0]
    assert (row["input"], row["result"]) == ({"phone": "123", "age": 7, "score": None}, {"ratio": None, "n": 3})

def test_saving_the_same_result_twice_keeps_one_row(store):
    store.create_job(_job("j1"))
    store.add_items("j1", enumerate(INPUTS))
    row = {"idx": 1, "status": "completed", "attempts": 1, "result": {"valid": True}, "error": None, "duration_ms": 2.5}
    store.save_results("j1", [row])
    store.save_results("j1", [row])
    store.save_results("j1", [{**row, "attempts": 2, "result": {"valid": False}}, {**row, "attempts": 3, "result": {"valid": "last"}}])
    rows = store.item_rows("j1")
    assert len(rows) == len(INPUTS)
    saved = [r for r in rows if r["idx"] == 1]
    assert len(saved) == 1
    assert saved[0]["input"] == 42  # the input survives the upsert
    assert (saved[0]["result"], saved[0]["attempts"], saved[0]["duration_ms"]) == ({"valid": "last"}, 3, 2.5)


def test_pending_items_after_partial_results(store):
    store.create_job(_job("j1"))
    store.add_items("j1", [(i, f"input-{i}") for i in range(10)])
    store.save_results("j1", [
        {"idx": 0, "status": "completed", "result": "ok-0"},
        {"idx": 3, "status": "failed", "error": "ValueError: bad number", "attempts": 3},
        {"idx": 7, "status": "completed", "result": None},
        {"idx": 8, "status": "pending", "error": "retry later", "attempts": 1},  # a retry goes back in the queue
    ])
    assert store.pending_items("j1") == [(i, f"input-{i}") for i in (1, 2, 4, 5, 6, 8, 9)]
    assert store.item_counts("j1") == {"pending": 7, "completed": 2, "failed": 1, "cancelled": 0}
    failed = store.item_rows("j1", status="failed")
    assert [(r["idx"], r["error"], r["attempts"], r["result"]) for r in failed] == [(3, "ValueError: bad number", 3, None)]
    assert store.item_counts("no-such-job") == dict.fromkeys(ITEM_STATUSES, 0)


def test_item_rows_page_in_index_order(store):
    store.create_job(_job("j1"))
    store.add_items("j1", [(i, i * 10) for i in reversed(range(25))])
    assert [r["idx"] for r in store.item_rows("j1", limit=10, offset=10)] == list(range(10, 20))
    assert [r["idx"] for r in store.item_rows("j1", offset=20)] == [20, 21, 22, 23, 24]
    assert [r["input"] for r in store.item_rows("j1", status="pending", limit=3)] == [0, 10, 20]


def test_finished_values_pick_one_result_field_of_the_finished_items_in_index_order(store):
    store.create_job(_job("j1"))
    store.add_items("j1", [(i, {"n": i}) for i in range(30)])
    store.save_results("j1", [{"idx": i, "status": "completed", "result": {"status": "valid" if i % 2 else "invalid",
                                                                            "other": [i]}} for i in (*range(0, 10), 21)])
    store.save_results("j1", [{"idx": 20, "status": "failed", "error": "ValueError: unreadable"}])
    store.cancel_pending("j1", "stopped")  # idx 10-19 and 22-29: cancelled, finished without a verdict
    picked = store.finished_values("j1", "status", min_idx=8)
    assert [idx for idx, _, _ in picked] == list(range(8, 30))  # pending ones would be left out; none are left
    assert picked[:2] == [(8, "completed", "invalid"), (9, "completed", "valid")]
    assert picked[2] == (10, "cancelled", None) and picked[12] == (20, "failed", None)
    assert picked[13] == (21, "completed", "valid")
    assert Store.finished_values(store, "j1", "status", min_idx=8) == picked  # the generic way agrees


def test_cancel_pending_marks_only_pending_items_with_the_reason(store):
    store.create_job(_job("j1"))
    store.add_items("j1", [(i, i) for i in range(6)])
    store.save_results("j1", [{"idx": 0, "status": "completed", "result": 0}, {"idx": 1, "status": "failed", "error": "boom"}])
    assert store.cancel_pending("j1", "cancelled by ana") == 4
    assert store.cancel_pending("j1", "again") == 0
    assert store.pending_items("j1") == []
    assert store.item_counts("j1") == {"pending": 0, "completed": 1, "failed": 1, "cancelled": 4}
    cancelled = store.item_rows("j1", status="cancelled")
    assert {r["error"] for r in cancelled} == {"cancelled by ana"}
    assert store.item_rows("j1", status="failed")[0]["error"] == "boom"


def test_eight_threads_writing_results_at_once_lose_nothing(store):
    threads, per_thread, chunk = 8, 120, 20
    total = threads * per_thread
    store.create_job(_job("j1", total=total))
    store.add_items("j1", [(i, i) for i in range(total)])
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def worker(number: int) -> None:
        try:
            start.wait()
            mine = range(number * per_thread, (number + 1) * per_thread)
            for first in range(mine.start, mine.stop, chunk):
                rows = [{"idx": i, "status": "completed", "result": {"double": i * 2}, "duration_ms": 1.0}
                        for i in range(first, first + chunk)]
                store.save_results("j1", rows)
                store.save_results("j1", rows[:2])  # a retried chunk must not duplicate rows
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert failures == []
    assert store.item_counts("j1") == {"pending": 0, "completed": total, "failed": 0, "cancelled": 0}
    rows = store.item_rows("j1")
    assert [r["idx"] for r in rows] == list(range(total))
    assert all(r["result"] == {"double": r["idx"] * 2} and r["input"] == r["idx"] for r in rows)


# --- history, files, cache, runs -----------------------------------------------------------------------

def test_history_comes_back_newest_first(store):
    assert store.add_history([{"phone": "+441234", "valid": True}, {"phone": "12", "valid": False}], source="csv") == 2
    assert store.add_history([{"email": "a@b.co", "valid": True}], source="single") == 1
    assert store.add_history([], source="csv") == 0
    rows = store.history()
    assert [r["record"] for r in rows] == [{"email": "a@b.co", "valid": True}, {"phone": "12", "valid": False},
                                           {"phone": "+441234", "valid": True}]
    assert [r["source"] for r in rows] == ["single", "csv", "csv"]
    assert [r["record"] for r in store.history(limit=1)] == [{"email": "a@b.co", "valid": True}]
    assert all(isinstance(r["created_at"], float) for r in rows)


def test_files_are_recorded_once(store):
    meta = {"id": "f1", "owner": "ana", "name": "phones.csv", "size": 12, "sha256": "ab" * 32,
            "path": "uploads/ab/" + "ab" * 32, "storage": "local"}
    store.add_file(meta)
    store.add_file({**meta, "name": "renamed.csv"})
    assert store.get_file("f1")["name"] == "phones.csv"
    assert store.get_file("f1")["size"] == 12
    assert store.get_file("nope") is None


def test_cache_keeps_the_latest_value_per_namespace_and_key(store):
    assert store.cache_get("geocode", "10 Downing St") is None
    store.cache_put("geocode", "10 Downing St", {"lat": 51.5034, "lng": -0.1276})
    store.cache_put("geocode", "10 Downing St", {"lat": 51.50335, "lng": -0.12763})
    store.cache_put("carrier", "10 Downing St", "n/a")
    assert store.cache_get("geocode", "10 Downing St") == {"lat": 51.50335, "lng": -0.12763}
    assert store.cache_get("carrier", "10 Downing St") == "n/a"


def test_runs_are_recorded_for_analytics(store):
    for workers in (1, 2, 4):
        store.record_run({"workload": "phone", "backend": "threads", "workers": workers, "chunk_size": 100,
                          "items": 1000, "seconds": 1.0 / workers})
    store.record_run({"workload": "phone", "backend": "processes", "workers": 2, "items": 1000, "seconds": 0.4,
                      "source": "benchmark"})
    runs = store.runs()
    assert [(r["backend"], r["workers"], r["source"]) for r in runs] == [
        ("processes", 2, "benchmark"), ("threads", 4, "job"), ("threads", 2, "job"), ("threads", 1, "job")]
    assert runs[0]["chunk_size"] is None and runs[1]["seconds"] == 0.25
    assert len(store.runs(limit=2)) == 2
    with pytest.raises(ValueError, match="source"):
        store.record_run({"workload": "x", "backend": "b", "workers": 1, "items": 1, "seconds": 1, "source": "guess"})


# --- SQL backends only ------------------------------------------------------------------------------

def test_reopening_a_store_keeps_data_and_does_not_migrate_again(sql_store_factory):
    first = sql_store_factory()
    first.create_job(_job("j1"))
    first.add_items("j1", [(0, "x")])
    first.close()
    again = sql_store_factory()
    assert again.schema_version() == len(MIGRATIONS[again.backend])
    assert again.execute("SELECT COUNT(*) AS n FROM schema_version")[0]["n"] == len(MIGRATIONS[again.backend])
    assert again.get_job("j1")["owner"] == "ana"
    assert again.pending_items("j1") == [(0, "x")]


def test_stores_opened_at_the_same_time_migrate_once(sql_store_factory):
    opened, failures = [], []

    def open_one() -> None:
        try:
            opened.append(sql_store_factory())
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and len(opened) == 4
    assert opened[0].execute("SELECT COUNT(*) AS n FROM schema_version")[0]["n"] == len(MIGRATIONS[opened[0].backend])


def test_execute_answers_read_only_queries_and_refuses_writes(sql_store_factory):
    store = sql_store_factory()
    store.create_job(_job("j1"))
    store.create_job(_job("j2", owner="ben"))
    mark = "?" if store.backend == "sqlite" else "%s"
    rows = store.execute(f"SELECT id, owner FROM jobs WHERE owner = {mark} ORDER BY id", ["ben"])
    assert rows == [{"id": "j2", "owner": "ben"}]
    with pytest.raises(Exception, match="(?i)read.?only"):
        store.execute("DELETE FROM jobs")
    assert len(store.list_jobs()) == 2
    store.create_job(_job("j3"))  # the connection used for the refused write still writes normally
    assert store.get_job("j3") is not None



# --- history per owner, counters, finishing and leases (issues 9 and 10) ---------------------------------------

def test_history_is_kept_per_owner(store):
    store.add_history([{"phone": "+441"}], source="csv", owner="ana")
    store.add_history([{"phone": "+442"}, {"phone": "+443"}], source="csv", owner="ben")
    assert [r["record"]["phone"] for r in store.history(owner="ana")] == ["+441"]
    assert [r["record"]["phone"] for r in store.history(owner="ben", limit=1)] == ["+443"]
    assert len(store.history()) == 3  # everyone's, for SPINDLE_SHARED_HISTORY=true
    assert {r["owner"] for r in store.history()} == {"ana", "ben"}


def test_counters_come_from_the_items_and_a_job_with_pending_items_is_never_completed(store):
    store.create_job(_job("j1", total=4))
    store.add_items("j1", [(i, i) for i in range(4)])
    store.save_results("j1", [{"idx": 0, "status": "completed", "result": 0}, {"idx": 1, "status": "failed", "error": "x"}])
    store.save_results("j1", [{"idx": 0, "status": "completed", "result": 0}])  # late, repeated
    assert (store.get_job("j1")["done"], store.get_job("j1")["failed"]) == (2, 1)
    assert store.finish_job("j1", "completed") is False
    assert store.get_job("j1")["status"] == "pending"
    assert store.fail_pending("j1", "not run: unknown task") == 2
    assert store.finish_job("j1", "failed", error="not run") is True
    job = store.get_job("j1")
    assert (job["status"], job["done"], job["failed"], job["error"]) == ("failed", 4, 3, "not run")


def test_reopening_cancelled_items_makes_only_them_pending_again(store):
    store.create_job(_job("j1", total=3))
    store.add_items("j1", [(i, i) for i in range(3)])
    store.save_results("j1", [{"idx": 0, "status": "completed", "result": 0}])
    store.cancel_pending("j1", "the job was cancelled")
    store.finish_job("j1", "cancelled")
    assert store.reopen_items("j1", ("cancelled",)) == 2
    assert [idx for idx, _ in store.pending_items("j1")] == [1, 2]
    job = store.get_job("j1")
    assert (job["status"], job["done"]) == ("pending", 1)


def test_a_lease_keeps_a_job_on_one_server_until_it_expires(store):
    store.create_job(_job("j1", status="running"))  # left with a pending item
    store.create_job(_job("j2", status="running", lease_owner="server-gone", lease_expires=0.0))  # its server died
    store.create_job(_job("intake", status="running"))  # never leased, nothing pending: run by something else
    store.add_items("j1", [(0, 0)])
    assert {j["id"] for j in store.claim_orphans("server-a", lease_s=60, limit=10)} == {"j1", "j2"}
    assert store.claim_orphans("server-b", lease_s=60) == []
    assert store.claim_job("j1", "server-b", 60) is False
    assert store.claim_job("j1", "server-a", 60) is True  # renewing one's own lease
    assert store.renew_leases(["j1", "j2"], "server-a", 0.001) == {"j1", "j2"}
    import time

    time.sleep(0.05)  # server-a's leases have expired: it stopped renewing
    assert {j["id"] for j in store.claim_orphans("server-b", lease_s=60)} == {"j1", "j2"}
    assert store.renew_leases(["j1", "j2"], "server-a", 60) == set()  # a taken-over job is lost for good
    assert store.release_lease("j1", "server-a") is False
    assert store.release_lease("j1", "server-b") is True  # expired at once: anyone may claim it
    assert [j["id"] for j in store.claim_orphans("server-c", lease_s=60)] == ["j1"]
    assert store.finish_job("j2", "completed") is True
    assert store.get_job("j2")["lease_owner"] is None


def test_migrating_an_old_store_keeps_its_history_as_nobody_s(tmp_path):
    import sqlite3

    from utils.store.base import SCHEMA_VERSION_DDL
    from utils.store.sqlite_store import _statements

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:  # a store written by the release before leases and owners
        conn.execute(SCHEMA_VERSION_DDL.format(real="REAL"))
        for statement in _statements(MIGRATIONS["sqlite"][0]):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (1, 0)")
        conn.execute("INSERT INTO history (record, source, created_at) VALUES ('{\"phone\": \"+44\"}', 'csv', 0)")
    store = SQLiteStore(path)
    assert store.schema_version() == len(MIGRATIONS["sqlite"])
    assert [(r["record"], r["owner"]) for r in store.history()] == [({"phone": "+44"}, "")]
    assert store.history(owner="ana") == []
    store.close()
