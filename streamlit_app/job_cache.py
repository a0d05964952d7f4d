"""What a page shows of a job, built once per job version instead of once per rerun.

Why: a Streamlit page reruns on every click, and every poll of a running job. A
finished job never changes, so its results table, problems report and look-alike
groups are built once and kept (keyed on job id and version). A running job's
version moves as chunks finish (its item counts), so what is shown follows it.
The store stays the single source of truth: a new version is read from it.
"""
from __future__ import annotations

import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, TypeVar

from utils.task_queue import ACTIVE

T = TypeVar("T")
MAX_ENTRIES = 16  # rows and tables of recent jobs; a 100,000-row table is some 100 MB


@dataclass
class _Entry:
    version: Hashable
    value: Any


@dataclass
class JobCache:
    """Values per (store, job, name), each valid for one job version; least recently used dropped first.

    A value is built once per version: a caller that finds it being built (by another session, or by the
    preparation started when the job finished) waits for that build instead of starting its own.
    """

    max_entries: int = MAX_ENTRIES
    _entries: OrderedDict[tuple, _Entry] = field(default_factory=OrderedDict)
    _building: dict[tuple, Future] = field(default_factory=dict)  # (key, version) → the build under way
    _lock: threading.Lock = field(default_factory=threading.Lock)  # guards _entries and _building

    def get(self, key: tuple, version: Hashable, build: Callable[[], T]) -> T:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.version == version:
                self._entries.move_to_end(key)
                return entry.value
            underway = self._building.get((key, version))
            if underway is None:
                mine: Future = Future()
                self._building[(key, version)] = mine
        if underway is not None:
            return underway.result()  # the other build's value, or its error
        try:
            value = build()  # outside the lock: other keys are read and built meanwhile
        except BaseException as exc:
            with self._lock:
                self._building.pop((key, version), None)
            mine.set_exception(exc)
            raise
        with self._lock:
            self._building.pop((key, version), None)
            self._entries[key] = _Entry(version, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        mine.set_result(value)
        return value

    def built(self, key: tuple, version: Hashable) -> Any:
        """The value built for this version, or None (nothing is built, nothing waited for)."""
        with self._lock:
            entry = self._entries.get(key)
            return entry.value if entry is not None and entry.version == version else None

    def get_async(self, key: tuple, version: Hashable, build: Callable[[], T],
                  start: Callable[[Callable[[], T]], Future]) -> Future:
        """The value as a Future, for a page that must not wait in its script: done at once when it is built,
        the build under way when there is one, else a build started with `start` (e.g. a manager task)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.version == version:
                ready: Future = Future()
                ready.set_result(entry.value)
                return ready
            underway = self._building.get((key, version))
        if underway is not None:
            return underway
        return start(lambda: self.get(key, version, build))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


CACHE = JobCache()


def job_version(store: Any, job_id: str) -> Hashable:
    """The version of the job's stored state (None when there is no such job): one read of its record."""
    record = store.get_job(job_id)
    return None if record is None else record_version(record)


def record_version(record: Mapping[str, Any]) -> tuple:
    """A finished job: its final record (status, counts, finish time). A running one: its done and failed counters,
    which the store moves in the same transaction as the item rows (so no count of 100,000 rows per poll)."""
    if record["status"] not in ACTIVE:
        return (record["status"], record.get("done"), record.get("failed"), record.get("finished_at"))
    return ("running", record.get("done") or 0, record.get("failed") or 0)


def cached(store: Any, job_id: str, name: str, build: Callable[[], T], version: Hashable | None = None) -> T:
    """`build()` for this job, reused while the job's version is unchanged (the version is read when not given)."""
    if version is None:
        version = job_version(store, job_id)
    return CACHE.get((store_key(store), job_id, name), version, build)


_store_keys: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()
_store_keys_lock = threading.Lock()  # guards _store_keys


def store_key(store: Any) -> str:
    """A name for this store object that no later store gets (id() is reused once an object is gone)."""
    with _store_keys_lock:
        key = _store_keys.get(store)
        if key is None:
            key = _store_keys[store] = uuid.uuid4().hex
        return key
