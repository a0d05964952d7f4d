"""Database work sized for the "database" worker pool: batch inserts and queries run in parallel.

With a manager (utils/threading_manager.py) each unit of work is submitted to its
"database" pool, so database calls never hold up the UI or the CPU pools and the
pool size caps how many connections are busy at once. Without one, the work
runs in the caller's thread, one piece after another: same results, no threads.
"""
from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Callable, Protocol, Sequence

from utils.store.base import Store

DATABASE_POOL = "database"
Query = str | tuple[str, Sequence[Any] | dict | None]


class TaskSubmitter(Protocol):
    """What db_ops needs from the threading manager."""

    def submit_task(self, fn: Callable[..., Any], *args: Any, task_name: str | None = None,
                    pool: str | None = None, **kwargs: Any) -> Future: ...


def _now_future(fn: Callable[..., Any], *args: Any) -> Future:
    """Run fn here and wrap the outcome in a finished Future (the no-manager path)."""
    future: Future = Future()
    try:
        future.set_result(fn(*args))
    except Exception as exc:
        future.set_exception(exc)
    return future


def _submit(manager: TaskSubmitter | None, name: str, fn: Callable[..., Any], *args: Any) -> Future:
    if manager is None:
        return _now_future(fn, *args)
    return manager.submit_task(fn, *args, task_name=name, pool=DATABASE_POOL)


def batch_insert(store: Store, table: str, rows: Sequence[dict], batch_size: int = 1000,
                 manager: TaskSubmitter | None = None) -> int:
    """Insert rows into one of the schema's tables in batches; returns how many were inserted.

    Each batch is one transaction; with a manager the batches run in parallel.
    The first failing batch's error is raised after all batches finished.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    futures = [
        _submit(manager, f"batch_insert:{table}:{start}", store.insert_rows, table, rows[start:start + batch_size])
        for start in range(0, len(rows), batch_size)
    ]
    return sum(_results(futures))


def parallel_query_execution(store: Store, queries: Sequence[Query], manager: TaskSubmitter | None = None) -> list[list[dict]]:
    """Run read-only queries (SQL text, or (SQL, params)); returns their rows in the order given."""
    futures = []
    for number, query in enumerate(queries):
        text, params = (query, None) if isinstance(query, str) else query
        futures.append(_submit(manager, f"query:{number}", store.execute, text, params))
    return _results(futures)


def execute_query_async(store: Store, query: str, params: Sequence[Any] | dict | None = None,
                        manager: TaskSubmitter | None = None) -> Future:
    """Start one read-only query; the Future gives its rows (already done when there is no manager)."""
    return _submit(manager, "query", store.execute, query, params)


def _results(futures: list[Future]) -> list[Any]:
    """Every future's result in order; waits for all before raising the first error."""
    outcomes, first_error = [], None
    for future in futures:
        try:
            outcomes.append(future.result())
        except Exception as exc:
            first_error = first_error or exc
            outcomes.append(None)
    if first_error is not None:
        raise first_error
    return outcomes
