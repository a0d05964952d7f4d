"""The threading manager's process work on a real Dask cluster (scheduler + 2 workers on 127.0.0.1).

One cluster serves the whole module (it takes seconds to start); every test gets a fresh
manager attached to it. The scheduler runs with allowed-failures=0, so a task whose
worker dies comes back at once as KilledWorker: that is the path where Spindle, not
Dask, re-runs the work, and it is the one these tests must see.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import socket
import types
from concurrent.futures import CancelledError
from concurrent.futures.process import BrokenProcessPool

import pytest

from config.settings import Settings
from config.threading_config import load_threading_config
from streamlit_app.audio import analyse_audio_item
from streamlit_app.media_samples import broken_files, sample_audio_files
from streamlit_app.performance import validate_phone_number
from streamlit_app.validation.record_check import validate_record
from streamlit_app.validation.records import guess_columns, normalise_records
from streamlit_app.validation.sample_data import sample_phone_numbers, sample_sheet
from tests import dask_workers as w
from tests.dask_cluster import LocalDaskProcesses
from tests.waiting import wait_until
from utils.dask_backend import DaskWorkers, attach_dask, attach_from_settings, cluster_info, detach_dask
from utils.item_errors import ItemError
from utils.process_workers import ProcessWorkers
from utils.threading_manager import ThreadingManager

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))



@pytest.fixture(scope="module")
def cluster():
    with LocalDaskProcesses(n_workers=2, threads=1, allowed_failures=0) as local:
        yield local


@pytest.fixture
def manager(cluster):
    cluster.wait_for_workers(2, timeout=60)  # a test before may have killed or restarted one
    m = ThreadingManager(load_threading_config())
    status = attach_dask(m, cluster.address, timeout=30.0)
    assert status.connected, status.message
    yield m
    m.shutdown(wait=False, cancel_futures=True)


def backend_of(manager: ThreadingManager) -> DaskWorkers:
    backend = manager.pool_backend("cpu")
    assert isinstance(backend, DaskWorkers)
    return backend


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_attach_makes_the_cpu_pool_a_dask_pool(manager, cluster):
    settings = manager.pool_settings("cpu")
    assert settings["kind"] == "dask"
    assert settings["workers"] == 2  # the cluster's total threads
    assert manager.pool_settings("default")["kind"] == "thread"
    assert cluster_info(manager, "default") is None

    other = ThreadingManager(load_threading_config())
    try:
        with pytest.raises(ValueError):
            attach_dask(other, cluster.address, chunks_per_thread=0)
        status = attach_dask(other, cluster.address, chunks_per_thread=2)
        assert status.connected and status.workers == 2 and status.threads == 2
        assert other.pool_settings("cpu")["workers"] == 4  # a chunk queued behind each running one
        assert "up to 4 chunks in flight" in status.message
    finally:
        other.shutdown(wait=False, cancel_futures=True)


def test_validation_batch_runs_on_the_cluster_in_order(manager):
    df = sample_sheet(120)
    records = normalise_records(df, guess_columns(df))
    items = records[:57] + [None] + records[57:]  # None breaks only its own slot
    job = manager.map(w.validate_with_defaults, items, pool="cpu")
    results = job.result()
    progress = job.progress()
    assert progress.backend == "dask", progress.backend_reason
    assert progress.done == len(items) and progress.failed == 1
    assert results[:57] + results[58:] == [validate_record(r, {}) for r in records]
    error = results[57]
    assert isinstance(error, ItemError) and error.index == 57 and error.error_type == "AttributeError"

    pids = manager.parallel_map(w.worker_pid, list(range(20)), pool="cpu", chunk_size=1)
    assert set(pids) <= set(backend_of(manager).worker_pids().values())
    assert os.getpid() not in pids


def test_phone_checks_asked_for_processes_go_to_the_cluster(manager):
    numbers = sample_phone_numbers(3000)
    job = manager.map(validate_phone_number, numbers, kind="process")
    assert job.result() == [validate_phone_number(n) for n in numbers]
    assert job.progress().pool == "cpu"
    assert backend_of(manager).chunks_sent > 0


def test_media_batch_keeps_order_and_isolates_bad_files(manager):
    good = [(name, data) for name, data in sample_audio_files()]
    bad = broken_files("audio")
    items = good[:3] + [(name, data) for name, data, _ in bad] + good[3:]
    results = manager.parallel_map(analyse_audio_item, items, pool="cpu")
    assert len(results) == len(items)
    rows = results[:3] + results[3 + len(bad):]
    assert all(isinstance(row, dict) for row in rows), [r for r in rows if not isinstance(r, dict)]
    assert rows == [analyse_audio_item(item) for item in good]
    for (name, _, words), error in zip(bad, results[3:3 + len(bad)]):
        assert isinstance(error, ItemError), (name, error)
        assert error.error_type == "BadFileError"
        assert words in error.message, (name, error.message)


def test_killing_a_worker_mid_job_loses_nothing(manager, cluster):
    backend = backend_of(manager)
    manager.configure("cpu", workers=4)  # two chunks per worker: the killed one is surely holding one
    items = list(range(400))
    job = manager.map(w.slow_square, items, pool="cpu")
    assert wait_until(lambda: job.progress().done >= 60)
    assert not job.finished_flag
    victim = next(iter(backend.worker_pids().values()))
    os.kill(victim, signal.SIGKILL)
    results = job.result()
    progress = job.progress()
    assert results == [x * x for x in items]
    assert progress.failed == 0 and progress.status == "completed"
    assert backend.worker_deaths >= 1  # the chunk came back as KilledWorker and the manager re-ran it
    assert wait_until(lambda: victim not in backend.worker_pids().values(), timeout=60)


def test_an_item_that_kills_its_worker_fails_alone(manager):
    items = list(range(1, 40)) + [-1] + list(range(40, 60))
    results = manager.parallel_map(w.square_or_die, items, pool="cpu")
    for index, (item, result) in enumerate(zip(items, results)):
        if item == -1:
            assert isinstance(result, ItemError) and result.error_type == "WorkerDied", result
        elif item % 7 == 0:
            assert isinstance(result, ItemError) and result.error_type == "ValueError", result
            assert result.message == f"bad input {item}" and result.index == index
        else:
            assert result == item * item


def test_a_timed_out_chunk_is_failed_and_its_worker_restarted(manager):
    backend = backend_of(manager)
    before = set(backend.worker_pids().values())
    items = list(range(20)) + [-2] + list(range(20, 40))
    results = manager.parallel_map(w.square_or_hang, items, pool="cpu", timeout=0.5, chunk_size=1)
    stuck = results[20]
    assert isinstance(stuck, ItemError) and stuck.error_type == "TimeoutError", stuck
    assert results[:20] + results[21:] == [x * x for x in items if x != -2]
    assert backend.rebuilds == 1

    def replaced() -> bool:
        now = set(backend.worker_pids().values())
        return len(now) == 2 and len(now & before) == 1  # the stuck worker's process was replaced

    assert wait_until(replaced, timeout=60, interval=0.2)


def test_initializer_runs_in_every_worker(manager):
    manager.configure("cpu", initializer=w.record_pid)
    pids = set(backend_of(manager).worker_pids().values())

    def all_initialized() -> bool:
        marks = manager.parallel_map(w.initialized, list(range(8)), pool="cpu", chunk_size=1)
        return all(marks) and {int(m) for m in marks} <= pids

    assert wait_until(all_initialized, timeout=30, interval=0.2)


def test_cluster_info_resize_and_detach(manager):
    info = cluster_info(manager)
    assert info is not None and info["error"] is None
    assert info["chunks_sent"] == 0 and info["worker_deaths"] == 0 and info["rebuilds"] == 0
    assert info["workers"] == 2 and info["threads"] == 2
    assert info["status"] == "running" and info["address"].startswith("tcp://127.0.0.1:")
    assert info["memory_limit_bytes"] > 0 and info["memory_used_bytes"] > 0
    assert info["in_flight"] == 0 and info["max_in_flight"] == 2
    assert info["dashboard_link"] is None  # the test scheduler runs without its dashboard
    assert len(info["per_worker"]) == 2
    assert {"address", "name", "threads", "memory_limit_bytes", "memory_used_bytes", "cpu_percent",
            "processing"} <= set(info["per_worker"][0])

    manager.configure("cpu", workers=3)  # more chunks in flight; the cluster itself does not grow
    job = manager.map(w.slow_square, list(range(300)), pool="cpu", chunk_size=5)
    seen = []
    assert wait_until(lambda: seen.append(cluster_info(manager)) or seen[-1]["in_flight"] == 3, timeout=30)
    busy = seen[-1]
    assert busy["max_in_flight"] == 3 and busy["threads"] == 2 and busy["processing"] <= 3
    assert job.result() == [x * x for x in range(300)]
    assert cluster_info(manager)["in_flight"] == 0

    assert detach_dask(manager) is True
    assert cluster_info(manager) is None
    settings = manager.pool_settings("cpu")
    assert settings["kind"] == "process" and settings["workers"] == load_threading_config().pools["cpu"].workers
    job = manager.map(validate_phone_number, ["+1 202 555 0143", "12"], kind="process")
    assert job.result() == [validate_phone_number("+1 202 555 0143"), False]
    assert isinstance(manager.pool_backend("cpu"), ProcessWorkers)


def test_unreachable_scheduler_falls_back_to_the_local_pools():
    manager = ThreadingManager(load_threading_config())
    try:
        address = f"tcp://127.0.0.1:{free_port()}"
        status = attach_dask(manager, address, timeout=1.0)
        assert not status.connected
        assert status.message == (f"cannot reach the Dask scheduler at {address}: connection refused; "
                                  "work runs on the local pools")
        assert status.message.endswith("; work runs on the local pools")
        assert "Traceback" not in status.message and "\n" not in status.message
        assert manager.pool_settings("cpu")["kind"] == "process"
        assert cluster_info(manager) is None

        assert attach_from_settings(manager, Settings()) is None  # no address: stay local, say nothing
        settings = dataclasses.replace(Settings(), dask_scheduler_address=address)
        from_settings = attach_from_settings(manager, settings, timeout=1.0)
        assert from_settings is not None and not from_settings.connected

        numbers = sample_phone_numbers(200)
        job = manager.map(validate_phone_number, numbers, kind="process")
        assert job.result() == [validate_phone_number(n) for n in numbers]
        assert job.progress().backend == "process"
    finally:
        manager.shutdown(wait=False, cancel_futures=True)


class _FakeDaskFuture:
    def __init__(self, key: str, status: str, outcome):
        self.key, self.status, self._outcome = key, status, outcome

    def result(self):
        if isinstance(self._outcome, BaseException):
            raise self._outcome
        return self._outcome

    def add_done_callback(self, fn):
        fn(self)


class _FakeClient:
    status = "running"

    def __init__(self, outcomes):
        self.outcomes = list(outcomes)

    def submit(self, fn, *args, key, pure):
        assert pure is False
        status, outcome = self.outcomes.pop(0)
        return _FakeDaskFuture(key, status, outcome)


def test_dask_outcomes_become_what_the_manager_understands():
    from distributed import KilledWorker
    from distributed.client import FutureCancelledError
    from distributed.comm.core import CommClosedError

    outcomes = [
        ("finished", ([(True, 1, 1, 0.0)], 0.0, 0.0)),
        ("error", KilledWorker("chunk-1", types.SimpleNamespace(address="tcp://127.0.0.1:2"), 0)),
        ("error", CommClosedError("in <TCP (closed)>: Stream is closed")),
        ("lost", None),
        ("cancelled", FutureCancelledError("chunk-2", "scheduler-connection-lost")),
        ("cancelled", FutureCancelledError("chunk-3", "cancelled by the user")),
        ("error", ModuleNotFoundError("No module named 'utils'")),
    ]
    backend = DaskWorkers("cpu", 2, _FakeClient(outcomes), "tcp://127.0.0.1:1")
    futures = [backend.submit(w.slow_square, [1])[0] for _ in outcomes]
    assert futures[0].result() == ([(True, 1, 1, 0.0)], 0.0, 0.0)
    for future in futures[1:5]:
        with pytest.raises(BrokenProcessPool):
            future.result()
    with pytest.raises(CancelledError):
        futures[5].result()
    with pytest.raises(ModuleNotFoundError):
        futures[6].result()
    assert backend.worker_deaths == 4 and backend.in_flight() == 0

    backend.client.status = "closing"
    with pytest.raises(RuntimeError, match="lost the Dask scheduler"):
        backend.submit(w.slow_square, [1])


def test_losing_the_scheduler_mid_job_loses_nothing_and_goes_back_to_local_processes():
    with LocalDaskProcesses(n_workers=1, threads=1) as lonely:
        manager = ThreadingManager(load_threading_config())
        try:
            status = attach_dask(manager, lonely.address, timeout=1.0)  # also how long it tries to reconnect
            assert status.connected, status.message
            items = list(range(300))
            job = manager.map(w.slow_square, items, pool="cpu")
            assert wait_until(lambda: job.progress().done >= 30)
            lonely.kill_scheduler()
            assert job.result() == [x * x for x in items]  # finished on the manager's threads
            assert job.progress().failed == 0

            def local_again() -> bool:
                cluster_info(manager)  # notices the client gave up
                return manager.pool_settings("cpu")["kind"] == "process"

            assert wait_until(local_again, timeout=30, interval=0.1)
            assert cluster_info(manager) is None
            job = manager.map(validate_phone_number, sample_phone_numbers(100), kind="process")
            job.result()
            assert job.progress().backend == "process"
            assert isinstance(manager.pool_backend("cpu"), ProcessWorkers)
        finally:
            manager.shutdown(wait=False, cancel_futures=True)


def test_workers_that_cannot_import_the_project_are_named_and_not_used():
    with LocalDaskProcesses(n_workers=1, threads=1, project_on_path=False) as wrong:
        manager = ThreadingManager(load_threading_config())
        try:
            status = attach_dask(manager, wrong.address, timeout=5.0)
            assert not status.connected
            assert status.message.startswith(f"cannot use the Dask cluster at {wrong.address}: 1 of 1 workers "
                                             "cannot import Spindle's code (")
            assert "No module named 'utils'" in status.message
            assert f"start them with PYTHONPATH={ROOT}" in status.message
            assert status.message.endswith("; work runs on the local pools")
            assert manager.pool_settings("cpu")["kind"] == "process"
        finally:
            manager.shutdown(wait=False, cancel_futures=True)


def test_dashboard_link_only_when_the_scheduler_serves_one():
    import http.server
    import threading

    from utils.dask_backend import _dashboard

    class Status(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            self.send_response(200 if self.path == "/status" else 404)
            self.end_headers()

        def log_message(self, *_args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Status)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        served = types.SimpleNamespace(dashboard_link=f"http://127.0.0.1:{port}/status")
        missing = types.SimpleNamespace(dashboard_link=f"http://127.0.0.1:{port}/nothing-here")
        assert _dashboard(served) == served.dashboard_link
        assert _dashboard(missing) is None
        assert _dashboard(types.SimpleNamespace(dashboard_link=None)) is None
    finally:
        server.shutdown()
        server.server_close()
