"""What each backend promises beyond the shared suite: SQLite across processes, PostgreSQL
surviving dropped connections and big batches, Supabase batching and paging over HTTP,
and open_store choosing the backend from the settings."""
from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path

import psycopg
import pytest

from config.settings import Settings
from tests.fixtures import postgres as pg_fixture
from tests.fixtures.postgres import create_database
from tests.fixtures.supabase_server import MAX_ROWS, FakeSupabase, supabase_server  # noqa: F401  (fixture)
from utils.store import StoreError, backend_name, open_store
from utils.store.postgres_store import PostgresStore
from utils.store.sqlite_store import SQLiteStore
from utils.store.supabase_store import SupabaseStore


def _results(first: int, count: int, tag: str) -> list[dict]:
    return [{"idx": i, "status": "completed", "result": {"by": tag}} for i in range(first, first + count)]


# --- SQLite ---------------------------------------------------------------------------------------

def _write_from_another_process(path: str, first: int, count: int) -> None:
    store = SQLiteStore(path)
    for start in range(first, first + count, 10):
        store.save_results("j1", _results(start, 10, "child"))
    store.close()


def test_sqlite_two_processes_writing_the_same_file_both_succeed(tmp_path: Path):
    path = tmp_path / "shared.sqlite3"
    store = SQLiteStore(path)
    store.create_job({"id": "j1", "owner": "ana"})
    store.add_items("j1", [(i, i) for i in range(400)])
    child = multiprocessing.get_context("spawn").Process(target=_write_from_another_process, args=(str(path), 200, 200))
    child.start()
    for start in range(0, 200, 10):  # meanwhile this process writes the other half
        store.save_results("j1", _results(start, 10, "parent"))
    child.join(timeout=120)
    assert child.exitcode == 0
    assert store.item_counts("j1")["completed"] == 400
    assert {r["result"]["by"] for r in store.item_rows("j1", limit=200)} == {"parent"}
    assert {r["result"]["by"] for r in store.item_rows("j1", offset=200)} == {"child"}
    store.close()


def test_sqlite_reads_pass_and_writes_wait_while_another_connection_writes(tmp_path: Path):
    path = tmp_path / "s.sqlite3"
    store = SQLiteStore(path)
    store.create_job({"id": "j1", "owner": "ana"})
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # e.g. another process in the middle of a write
    other.execute("UPDATE jobs SET done = 1 WHERE id = 'j1'")
    assert store.get_job("j1")["done"] == 0  # WAL: readers see the last commit at once
    failures: list[BaseException] = []

    def write() -> None:
        try:
            store.update_job("j1", failed=2)
        except BaseException as exc:
            failures.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(0.3)  # let the store's write run into the lock (no timing is asserted)
    other.execute("COMMIT")
    other.close()
    writer.join(timeout=60)
    assert failures == []
    assert (store.get_job("j1")["done"], store.get_job("j1")["failed"]) == (1, 2)
    store.close()


# --- PostgreSQL -------------------------------------------------------------------------------------

@pytest.mark.postgres
def test_postgres_recovers_when_the_server_drops_its_connections(postgres_url: str):
    url = create_database(postgres_url)
    store = PostgresStore(url)
    store.create_job({"id": "j1", "owner": "ana"})
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s", (url.rsplit("/", 1)[1],)
        ).fetchone()[0]
    assert killed >= 1
    assert store.get_job("j1")["owner"] == "ana"  # the dead pooled connection is replaced, not reported
    store.close()


@pytest.mark.postgres
def test_postgres_big_batches_go_in_one_call(postgres_url: str):
    store = PostgresStore(create_database(postgres_url))
    store.create_job({"id": "j1", "owner": "ana"})
    assert store.add_items("j1", [(i, {"row": i}) for i in range(20_000)]) == 20_000
    store.save_results("j1", [{"idx": i, "status": "completed", "result": [i]} for i in range(0, 20_000, 2)])
    assert store.item_counts("j1") == {"pending": 10_000, "completed": 10_000, "failed": 0, "cancelled": 0}
    tail = store.item_rows("j1", offset=19_998)
    assert [(r["idx"], r["input"], r["status"], r["result"]) for r in tail] == [
        (19_998, {"row": 19_998}, "completed", [19_998]), (19_999, {"row": 19_999}, "pending", None)]
    store.close()


@pytest.mark.postgres
def test_postgres_store_reports_an_unreachable_server_clearly():
    with pytest.raises(StoreError, match="cannot open the PostgreSQL store"):
        PostgresStore("postgresql://nobody@127.0.0.1:1/none", connect_timeout_s=2)


def test_missing_postgres_binaries_are_an_error_with_the_install_command(monkeypatch):
    monkeypatch.setattr(pg_fixture, "PG_BIN_GLOB", "/nonexistent/*/bin")
    monkeypatch.setenv("PG_BIN", "")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RuntimeError, match="apt-get install postgresql"):
        pg_fixture.find_pg_bin()


# --- Supabase over HTTP -------------------------------------------------------------------------------

@pytest.mark.postgres
def test_supabase_batches_are_single_minimal_requests(supabase_server: FakeSupabase):
    store = SupabaseStore(supabase_server.url, supabase_server.key)
    store.create_job({"id": "j1", "owner": "ana"})
    store.add_items("j1", [(i, i) for i in range(300)])
    supabase_server.requests.clear()
    store.add_history([{"n": i} for i in range(50)], source="csv")
    store.save_results("j1", _results(0, 300, "worker"))
    posts = [r for r in supabase_server.requests if r["method"] == "POST"]
    assert [r["path"] for r in posts] == ["/rest/v1/history", "/rest/v1/items"]
    assert all("return=minimal" in r["prefer"] for r in posts)
    assert "resolution=merge-duplicates" in posts[1]["prefer"] and ("on_conflict", "job_id,idx") in posts[1]["query"]
    assert store.item_counts("j1")["completed"] == 300
    store.close()


@pytest.mark.postgres
def test_supabase_reads_page_past_the_servers_row_cap(supabase_server: FakeSupabase):
    store = SupabaseStore(supabase_server.url, supabase_server.key)
    store.create_job({"id": "j1", "owner": "ana"})
    total = MAX_ROWS * 2 + 500
    assert store.add_items("j1", [(i, str(i)) for i in range(total)]) == total
    assert store.pending_items("j1") == [(i, str(i)) for i in range(total)]
    assert [r["idx"] for r in store.item_rows("j1", offset=MAX_ROWS - 5, limit=MAX_ROWS + 10)] == list(
        range(MAX_ROWS - 5, 2 * MAX_ROWS + 5))
    assert store.cancel_pending("j1", "stop") == total
    store.close()


@pytest.mark.postgres
def test_supabase_without_the_schema_says_how_to_create_it(postgres_url: str):
    server = FakeSupabase(create_database(postgres_url)).start()  # an empty project
    try:
        with pytest.raises(StoreError, match="schema_sql"):
            SupabaseStore(server.url, server.key)
    finally:
        server.stop()


@pytest.mark.postgres
def test_supabase_has_no_sql_helper(supabase_server: FakeSupabase):
    store = SupabaseStore(supabase_server.url, supabase_server.key)
    with pytest.raises(NotImplementedError, match="DATABASE_URL"):
        store.execute("SELECT 1")
    store.close()


# --- choosing the backend ---------------------------------------------------------------------------

def test_without_configuration_the_store_is_a_sqlite_file_in_the_data_dir(tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "data")
    store = open_store(settings)
    assert (store.backend, backend_name(settings)) == ("sqlite", "sqlite")
    store.create_job({"id": "j1", "owner": "ana"})
    assert settings.sqlite_path.is_file()
    store.close()


@pytest.mark.postgres
def test_database_url_selects_postgres_even_when_supabase_is_set(postgres_url: str, tmp_path: Path):
    settings = Settings(data_dir=tmp_path, database_url=create_database(postgres_url),
                        supabase_url="http://127.0.0.1:9", supabase_key="k")
    store = open_store(settings)
    assert store.backend == "postgres"
    assert not settings.sqlite_path.exists()
    store.close()


@pytest.mark.postgres
def test_supabase_url_and_key_select_supabase(supabase_server: FakeSupabase, tmp_path: Path):
    settings = Settings(data_dir=tmp_path, supabase_url=supabase_server.url, supabase_key=supabase_server.key)
    store = open_store(settings)
    assert store.backend == "supabase"
    assert store.create_job({"id": "j1", "owner": "ana"})
    store.close()


def test_a_database_url_that_is_not_postgres_is_refused_with_the_reason(tmp_path: Path):
    with pytest.raises(StoreError, match="DATABASE_URL must start with postgresql://"):
        open_store(Settings(data_dir=tmp_path, database_url="mysql://u@h/db"))
