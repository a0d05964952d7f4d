"""db_ops: batch inserts and queries on the manager's "database" pool, same answers without one."""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from tests.fixtures.postgres import create_database
from tests.fixtures.supabase_server import FakeSupabase, supabase_server  # noqa: F401  (fixture)
from utils.store.db_ops import batch_insert, execute_query_async, parallel_query_execution
from utils.store.postgres_store import PostgresStore
from utils.store.sqlite_store import SQLiteStore
from utils.store.supabase_store import SupabaseStore


class StandInManager:
    """Just enough of utils/threading_manager.py: submit_task on named pools, backed by threads."""

    def __init__(self, workers: int = 4) -> None:
        self.executor = ThreadPoolExecutor(max_workers=workers)
        self.submitted: list[tuple[str | None, str | None]] = []
        self.threads: set[int] = set()
        self._lock = threading.Lock()

    def submit_task(self, fn, *args, task_name=None, pool=None, **kwargs) -> Future:
        with self._lock:
            self.submitted.append((task_name, pool))

        def run():
            with self._lock:
                self.threads.add(threading.get_ident())
            return fn(*args, **kwargs)

        return self.executor.submit(run)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True)


@pytest.fixture
def manager():
    manager = StandInManager()
    yield manager
    manager.shutdown()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    if request.param == "sqlite":
        store = SQLiteStore(tmp_path / "ops.sqlite3")
    else:
        store = PostgresStore(create_database(request.getfixturevalue("postgres_url")))
    yield store
    store.close()


def _mark(store) -> str:
    return "?" if store.backend == "sqlite" else "%s"


def _history_rows(count: int) -> list[dict]:
    return [{"record": {"row": i}, "source": "import", "created_at": 1000.0 + i} for i in range(count)]


def test_batch_insert_splits_rows_into_batches_on_the_database_pool(store, manager):
    assert batch_insert(store, "history", _history_rows(2500), batch_size=1000, manager=manager) == 2500
    assert [pool for _, pool in manager.submitted] == ["database"] * 3
    assert threading.get_ident() not in manager.threads
    rows = store.history()
    assert len(rows) == 2500
    assert sorted(r["record"]["row"] for r in rows) == list(range(2500))


def test_batch_insert_without_a_manager_gives_the_same_result(store):
    assert batch_insert(store, "history", _history_rows(30), batch_size=7) == 30
    assert [r["record"]["row"] for r in store.history(limit=3)] == [29, 28, 27]
    assert batch_insert(store, "history", []) == 0


def test_batch_insert_refuses_unknown_tables_and_columns(store):
    with pytest.raises(ValueError, match="unknown table"):
        batch_insert(store, "users; DROP TABLE jobs", [{"a": 1}])
    with pytest.raises(ValueError, match="unknown columns"):
        batch_insert(store, "history", [{"record": {}, "source": "x", "created_at": 1.0, "evil": 1}])
    with pytest.raises(ValueError, match="batch_size"):
        batch_insert(store, "history", _history_rows(1), batch_size=0)


def test_parallel_queries_return_rows_in_the_order_asked(store, manager):
    for owner, count in (("ana", 3), ("ben", 1)):
        for n in range(count):
            store.create_job({"id": f"{owner}{n}", "owner": owner})
    mark = _mark(store)
    queries = [
        (f"SELECT COUNT(*) AS n FROM jobs WHERE owner = {mark}", ["ana"]),
        "SELECT COUNT(*) AS n FROM jobs",
        (f"SELECT id FROM jobs WHERE owner = {mark} ORDER BY id", ["ben"]),
    ]
    expected = [[{"n": 3}], [{"n": 4}], [{"id": "ben0"}]]
    assert parallel_query_execution(store, queries, manager=manager) == expected
    assert [pool for _, pool in manager.submitted] == ["database"] * 3
    assert parallel_query_execution(store, queries) == expected


def test_a_failing_query_raises_its_own_error(store, manager):
    with pytest.raises(Exception, match="no_such_table"):
        parallel_query_execution(store, ["SELECT 1 AS one", "SELECT * FROM no_such_table"], manager=manager)


def test_async_query_gives_a_future_of_rows(store, manager):
    store.create_job({"id": "j1", "owner": "ana"})
    future = execute_query_async(store, f"SELECT owner FROM jobs WHERE id = {_mark(store)}", ["j1"], manager=manager)
    assert future.result(timeout=30) == [{"owner": "ana"}]
    assert manager.submitted == [("query", "database")]
    failed = execute_query_async(store, "SELECT * FROM no_such_table")  # no manager: done at once
    assert failed.done() and "no_such_table" in str(failed.exception())


@pytest.mark.postgres
def test_batch_insert_on_supabase_sends_one_minimal_request_per_batch(supabase_server: FakeSupabase, manager):
    store = SupabaseStore(supabase_server.url, supabase_server.key)
    supabase_server.requests.clear()
    assert batch_insert(store, "history", _history_rows(250), batch_size=100, manager=manager) == 250
    posts = [r for r in supabase_server.requests if r["method"] == "POST"]
    assert len(posts) == 3 and all("return=minimal" in r["prefer"] for r in posts)
    assert len(store.history()) == 250
    store.close()
