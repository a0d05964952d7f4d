"""A page's job views follow the store: built once for a finished job, kept current while chunks finish."""
from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pandas as pd
import pytest

from streamlit_app import job_cache
from streamlit_app.jobs import JobNotFound
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


def counts_from_every_row(store, job_id: str) -> dict[str, int]:
    """The counts the page should show, from one read of every item row."""
    counts = {"valid": 0, "invalid": 0, "failed": 0, "pending": 0}
    for row in store.item_rows(job_id):
        if row["status"] == "completed":
            counts["valid" if row["result"]["status"] == "valid" else "invalid"] += 1
        else:
            counts["failed" if row["status"] in ("failed", "cancelled") else "pending"] += 1
    return counts


def test_running_counts_follow_chunks_finishing_out_of_order(store):
    services = SimpleNamespace(store=store)
    make_job(store, "j1", 300)
    order = list(range(300))
    chunks = [order[i:i + 25] for i in range(0, 300, 25)]
    random.Random(4).shuffle(chunks[2:6])  # a few chunks overtake each other, as parallel workers do
    for chunk in chunks:
        finish(store, "j1", chunk)
        assert batch.running_counts(services, "j1") == counts_from_every_row(store, "j1")
    store.update_job("j1", status="completed", done=300, failed=sum(1 for i in range(300) if i % 11 == 5))
    final = batch.running_counts(services, "j1")
    assert final == counts_from_every_row(store, "j1")
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


def test_a_finished_runs_tables_hold_no_parsed_rows_for_the_garbage_collector_to_walk(store):
    """A finished run's page keeps its tables, not its rows: parsed rows are several dicts and lists each, and at
    100,000 rows every full collection walked them all (about 2 s inside a visitor's rerun)."""
    import gc

    services = SimpleNamespace(store=store)
    make_job(store, "j5", 3_000)
    finish(store, "j5", range(3_000))
    store.update_job("j5", status="completed", done=3_000, failed=sum(1 for i in range(3_000) if i % 11 == 5),
                     finished_at=5.0)
    gc.collect()
    before = len(gc.get_objects())
    results = batch.results_frame(services, "j5")
    counts = batch.running_counts(services, "j5")
    problems = batch.problems_frame(services, "j5")
    records = batch.records_frame(services, "j5")
    gc.collect()
    assert len(gc.get_objects()) - before < 1_000  # parsed rows kept would be some 12,000 tracked objects
    assert len(results) == len(records) == 3_000 and counts == counts_from_every_row(store, "j5")
    assert set(problems["row"]) == {i + 2 for i in range(3_000) if i % 11 == 5}  # the failed records
    assert batch.results_frame(services, "j5") is results  # and a rerun still reuses the table


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
    assert counts == counts_from_every_row(store, "j3")

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


def _cached_results(door, job_id: str):
    """The finished run's results table if the job cache holds it (built by the preparation or a page)."""
    store = door.services.store
    tables = job_cache.CACHE.built((job_cache.store_key(store), job_id, batch.FINISHED_TABLES),
                                   job_cache.job_version(store, job_id))
    return None if tables is None else tables.results


def test_a_finished_validation_table_is_built_before_a_watching_page_asks(door):
    from streamlit_app.identity import Identity

    ana = Identity("anon:" + "c" * 32, "ana", is_admin=False, mode="anonymous")
    door.visitor_arrived(ana)  # a tab of hers is open
    records = batch.prepare_records(*_sheet(40))
    job_id = door.start_validation(ana, records, {"source": "people.csv"})
    assert door.services.queue.wait(job_id, timeout=120)["status"] == "completed"
    assert wait_until(lambda: _cached_results(door, job_id) is not None)
    table = _cached_results(door, job_id)
    assert len(table) == 40 and (table["status"] != "pending").all()
    assert door.validation_results(ana, job_id)["row"].tolist() == table["row"].tolist()  # the page gets it


def test_no_table_is_built_for_a_visitor_with_no_tab_open(door):
    from streamlit_app.identity import Identity

    gone = Identity("anon:" + "d" * 32, "gone", is_admin=False, mode="anonymous")
    records = batch.prepare_records(*_sheet(20))
    job_id = door.start_validation(gone, records, {"source": "people.csv"})
    assert door.services.queue.wait(job_id, timeout=120)["status"] == "completed"
    time.sleep(1.0)  # the preparation would have run by now
    assert _cached_results(door, job_id) is None


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
    findings = door.compare_duplicates(ana, job_id, 90.0, False).result(60)
    pairs = findings.pairs
    assert list(pairs.columns[:3]) == ["left_row", "right_row", "source"]
    # the groups and merge keys come with the pairs (built on the manager, not in the page's rerun)
    assert findings.groups  # the sample plants duplicates
    assert [g["label"] for g in findings.groups] == [g["label"] for g in batch.duplicate_groups(
        door.services, job_id, pairs, ana.owner_id)]
    assert findings.keys == [batch.pair_key(pair) for _, pair in pairs.iterrows()]
    compared = [run for run in door.services.manager.jobs(owner=ana.owner_id) if run.name == "validation duplicates"]
    assert len(compared) == 1  # the comparison started with the run was the one used: none started for the page


def test_a_finished_run_opened_later_gets_its_tables_built_off_the_page_and_its_duplicates_compared(door):
    """No tab was open when the run ended, so nothing was prepared: the page waits on Futures, never in its
    script, for the tables and for the duplicates (100,000 rows take seconds)."""
    from streamlit_app.identity import Identity

    bo = Identity("anon:" + "e" * 32, "bo", is_admin=False, mode="anonymous")
    job_id = door.start_validation(bo, batch.prepare_records(*_sheet(30)), {"source": "people.csv"})
    assert door.services.queue.wait(job_id, timeout=120)["status"] == "completed"
    assert _cached_results(door, job_id) is None  # nobody was watching
    counts = door.validation_counts(bo, job_id)  # answered from the tally, without building the tables
    assert counts["valid"] + counts["invalid"] + counts["failed"] == 30 and counts["pending"] == 0
    ready = door.validation_tables_ready(bo, job_id)
    assert ready.result(60) is not None and _cached_results(door, job_id) is not None
    assert door.validation_tables_ready(bo, job_id).done()  # built once: later renders find it at once
    assert door.validation_counts(bo, job_id) == counts
    assert "score" in door.compare_duplicates(bo, job_id, 90.0, False).result(60).pairs.columns
    with pytest.raises(JobNotFound):  # someone else's run: not even a Future of it
        door.validation_tables_ready(Identity("anon:" + "a" * 32, "eve", is_admin=False, mode="anonymous"), job_id)


def test_a_sheet_with_nothing_to_check_fails_its_start_with_the_reason(door):
    from streamlit_app.identity import Identity

    ana = Identity("anon:" + "f" * 32, "ana", is_admin=False, mode="anonymous")
    sheet, mapping = _sheet(20)
    future = door.start_validation_in_background(ana, sheet.iloc[0:0], mapping, {"source": "empty.csv"}, 90.0, False)
    with pytest.raises(ValueError, match="no records"):
        future.result(60)


def test_a_finished_run_read_a_page_at_a_time_gives_the_same_tables_as_one_read(store, monkeypatch):
    services = SimpleNamespace(store=store)
    make_job(store, "j6", 100)
    finish(store, "j6", range(100))
    store.update_job("j6", status="completed", done=100, failed=sum(1 for i in range(100) if i % 11 == 5),
                     finished_at=6.0)
    whole = batch._build_finished_tables(services, "j6")
    monkeypatch.setattr(batch, "ROWS_PAGE", 7)  # pages that end mid-way, and a last short page
    paged = batch._build_finished_tables(services, "j6")
    pd.testing.assert_frame_equal(whole.results, paged.results)
    pd.testing.assert_frame_equal(whole.problems, paged.problems)
    pd.testing.assert_frame_equal(whole.records, paged.records)
    assert whole.counts == paged.counts and whole.results["row"].tolist() == [i + 2 for i in range(100)]
