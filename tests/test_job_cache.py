"""A page's job views follow the store: built once for a finished job, kept current while chunks finish."""
from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from streamlit_app import job_cache
from streamlit_app.validation import batch
from tests.waiting import wait_until
from utils.store.sqlite_store import SQLiteStore


@pytest.fixture
def store(tmp_path):
    store = SQLiteStore(tmp_path / "spindle.db")
    yield store
    store.close()


def make_job(store, job_id: str, total: int) -> None:
    store.create_job({"id": job_id, "owner": "someone", "kind": batch.KIND, "total": total, "status": "running",
                      "params": {"source": "t.csv", "columns": ["name"]}})
    store.add_items(job_id, [(i, {"row": i + 2, "name": f"person {i}", batch.SHEET_KEY: {"name": f"person {i}"}})
                             for i in range(total)])


def finish(store, job_id: str, indexes, verdict=lambda i: "valid" if i % 3 else "invalid") -> None:
    rows = []
    for i in indexes:
        if i % 11 == 5:
            rows.append({"idx": i, "status": "failed", "error": "ValueError: unreadable"})
        else:
            rows.append({"idx": i, "status": "completed", "result": {"row": i + 2, "status": verdict(i), "problems": []}})
    store.save_results(job_id, rows)


def test_running_counts_follow_chunks_finishing_out_of_order(store):
    services = SimpleNamespace(store=store)
    make_job(store, "j1", 300)
    order = list(range(300))
    chunks = [order[i:i + 25] for i in range(0, 300, 25)]
    random.Random(4).shuffle(chunks[2:6])  # a few chunks overtake each other, as parallel workers do
    for chunk in chunks:
        finish(store, "j1", chunk)
        assert batch.running_counts(services, "j1") == batch._final_counts(store, "j1")
    store.update_job("j1", status="completed", done=300, failed=sum(1 for i in range(300) if i % 11 == 5))
    final = batch.running_counts(services, "j1")
    assert final == batch._final_counts(store, "j1")
    assert final["pending"] == 0 and final["valid"] + final["invalid"] + final["failed"] == 300


def test_a_finished_jobs_table_is_built_once_and_a_new_version_rebuilds_it(store):
    services = SimpleNamespace(store=store)
    make_job(store, "j2", 10)
    finish(store, "j2", range(5))
    running = batch.results_frame(services, "j2")
    assert (running["status"] == "pending").sum() == 5
    finish(store, "j2", range(5, 10))
    store.update_job("j2", status="completed", done=10, failed=0, finished_at=1.0)
    first = batch.results_frame(services, "j2")
    assert (first["status"] != "pending").all()  # the chunks that finished since are in
    assert batch.results_frame(services, "j2") is first  # a rerun reuses the finished table


def test_the_cache_keeps_only_recent_entries():
    cache = job_cache.JobCache(max_entries=2)
    for key in ("a", "b", "c"):
        cache.get((key,), 1, lambda key=key: key.upper())
    built = []
    assert cache.get(("a",), 1, lambda: built.append("a") or "A again") == "A again"  # "a" was dropped
    assert cache.get(("c",), 1, lambda: built.append("c")) == "C"  # "c" was kept
    assert built == ["a"]


def test_a_running_jobs_table_streams_the_newest_rows_and_a_poll_reads_only_the_rows_it_shows(store):
    services = SimpleNamespace(store=store)
    make_job(store, "j3", 2_000)
    reads = []
    item_rows = store.item_rows

    def counting(job_id, status=None, limit=None, offset=0):
        rows = item_rows(job_id, status=status, limit=limit, offset=offset)
        reads.append((status, len(rows)))
        return rows

    store.item_rows = counting
    assert (batch.results_frame(services, "j3")["status"] == "pending").all()  # nothing finished yet
    finish(store, "j3", range(0, 1_500))
    reads.clear()
    first = batch.results_frame(services, "j3")
    finished = first[first["status"] != "pending"]
    newest = range(1_502 - batch.STREAM_ROWS, 1_502)  # sheet rows of the newest finished items
    assert len(finished) == batch.STREAM_ROWS and finished["row"].tolist() == list(newest)
    assert (first["status"] == "pending").sum() == batch.STREAM_PENDING  # then the next rows waiting
    assert first["name"].iloc[0] == f"person {1_500 - batch.STREAM_ROWS}"  # the sheet's own cells
    assert sum(n for _, n in reads) <= batch.STREAM_ROWS + batch.STREAM_PENDING  # not the 1,500 finished rows
    reads.clear()
    finish(store, "j3", range(1_500, 1_600))
    second = batch.results_frame(services, "j3")
    assert second[second["status"] != "pending"]["row"].iloc[-1] == 1_601
    counts = batch.running_counts(services, "j3")  # the same job version: nothing is read again
    assert sum(n for _, n in reads) <= batch.STREAM_ROWS + batch.STREAM_PENDING
    assert counts == batch._final_counts(store, "j3")

    finish(store, "j3", range(1_600, 2_000))  # the last chunks, then the job ends
    store.update_job("j3", status="completed", done=2_000, failed=0, finished_at=2.0)
    final = batch.results_frame(services, "j3")
    assert len(final) == 2_000 and (final["status"] != "pending").all()
    job_cache.CACHE.clear()
    assert final.equals(batch.results_frame(services, "j3"))  # the same table as one read of every row


def test_duplicate_group_labels_do_not_round_a_probability_up_to_certainty():
    assert batch._percent(99.96) == "99.9 % likely the same person"
    assert batch._percent(100.0) == "100.0 % likely the same person"


def test_sessions_asking_for_a_table_while_it_is_built_wait_for_that_one_build():
    cache = job_cache.JobCache()
    started, release = threading.Event(), threading.Event()
    builds = []

    def build():
        builds.append(1)
        started.set()
        release.wait(10)
        return "table"

    first = threading.Thread(target=cache.get, args=(("job", "results"), 1, build))
    first.start()
    assert started.wait(10)
    with ThreadPoolExecutor(3) as pool:
        waiting = [pool.submit(cache.get, ("job", "results"), 1, build) for _ in range(3)]
        time.sleep(0.2)
        assert not any(f.done() for f in waiting)  # they wait for the build under way...
        release.set()
        assert [f.result(10) for f in waiting] == ["table"] * 3
    first.join(10)
    assert builds == [1]  # ...and none starts its own


def test_a_failed_build_fails_its_waiters_and_the_next_request_builds_again():
    cache = job_cache.JobCache()
    started, release = threading.Event(), threading.Event()

    def failing():
        started.set()
        release.wait(10)
        raise OSError("the store went away")

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(cache.get, ("job", "results"), 1, failing)
        assert started.wait(10)
        second = pool.submit(cache.get, ("job", "results"), 1, lambda: "never built")
        time.sleep(0.1)
        release.set()
        for future in (first, second):
            with pytest.raises(OSError, match="went away"):
                future.result(10)
    assert cache.get(("job", "results"), 1, lambda: "rebuilt") == "rebuilt"


# ---------------------------------------------------------------- a finished job's page is prepared as it ends
@pytest.fixture
def door(tmp_path):
    from config.settings import load_settings
    from streamlit_app.jobs import JobDoor
    from utils.services import open_services

    services = open_services(load_settings({"SPINDLE_DATA_DIR": str(tmp_path)}))
    yield JobDoor(services)
    services.close()


def _cached(door, job_id: str, name: str):
    return job_cache.CACHE.peek((job_cache.store_key(door.services.store), job_id, name))


def test_a_finished_validation_table_is_built_before_a_watching_page_asks(door):
    from streamlit_app.identity import Identity

    ana = Identity("anon:" + "c" * 32, "ana", is_admin=False, mode="anonymous")
    door.visitor_arrived(ana)  # a tab of hers is open
    records = batch.prepare_records(*_sheet(40))
    job_id = door.start_validation(ana, records, {"source": "people.csv"})
    assert door.services.queue.wait(job_id, timeout=120)["status"] == "completed"
    assert wait_until(lambda: _cached(door, job_id, "results") is not None)
    table = _cached(door, job_id, "results")
    assert len(table) == 40 and (table["status"] != "pending").all()
    assert door.validation_results(ana, job_id)["row"].tolist() == table["row"].tolist()  # the page gets it


def test_no_table_is_built_for_a_visitor_with_no_tab_open(door):
    from streamlit_app.identity import Identity

    gone = Identity("anon:" + "d" * 32, "gone", is_admin=False, mode="anonymous")
    records = batch.prepare_records(*_sheet(20))
    job_id = door.start_validation(gone, records, {"source": "people.csv"})
    assert door.services.queue.wait(job_id, timeout=120)["status"] == "completed"
    time.sleep(1.0)  # the preparation would have run by now
    assert _cached(door, job_id, "results") is None


def _sheet(rows: int):
    from streamlit_app.validation.records import guess_columns
    from streamlit_app.validation.sample_data import sample_sheet

    sheet = sample_sheet(n=rows, seed=rows)
    return sheet, guess_columns(sheet)


# ---------------------------------------------------------------- a run started off the page's thread
def test_a_run_started_in_the_background_belongs_to_the_caller_and_its_duplicates_are_compared(door):
    from streamlit_app.identity import Identity

    ana = Identity("anon:" + "f" * 32, "ana", is_admin=False, mode="anonymous")
    sheet, mapping = _sheet(60)
    future = door.start_validation_in_background(ana, sheet, mapping, {"source": "people.csv"}, 90.0, False)
    job_id = future.result(60)
    assert door.owns(ana, job_id)
    assert door.services.queue.wait(job_id, timeout=120)["status"] == "completed"
    assert len(door.validation_results(ana, job_id)) == 60
    assert wait_until(lambda: door.duplicates_ready(ana, job_id, 90.0, False))  # started with the run


def test_a_sheet_with_nothing_to_check_fails_its_start_with_the_reason(door):
    from streamlit_app.identity import Identity

    ana = Identity("anon:" + "f" * 32, "ana", is_admin=False, mode="anonymous")
    sheet, mapping = _sheet(20)
    future = door.start_validation_in_background(ana, sheet.iloc[0:0], mapping, {"source": "empty.csv"}, 90.0, False)
    with pytest.raises(ValueError, match="no records"):
        future.result(60)
