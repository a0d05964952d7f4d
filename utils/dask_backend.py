"""Run the threading manager's process work on a Dask cluster instead of local processes.

`attach_dask(manager, "tcp://host:8786")` swaps a pool's local process backend for a
`DaskWorkers` that sends each CHUNK the manager hands out to the cluster as one Dask
task. Nothing else changes: chunk sizing, fair shares, per-item errors, timeouts and
the "a worker died: split the chunk, re-run the pieces, blame only the item that kills
its worker again" logic all stay in the manager, because a dead Dask worker is reported
to it exactly like a dead local process (`BrokenProcessPool`).

Starting a cluster by hand (no compose file needed)
---------------------------------------------------
Workers unpickle Spindle's own functions (`utils.chunk_runner.run_chunk_in_process`,
`streamlit_app.*`) by name, so every worker must run in the project's environment (the
same packages as `.venv`) with the project root on `sys.path`::

    .venv/bin/dask scheduler --host 127.0.0.1 --port 8786
    PYTHONPATH=/path/to/spindle .venv/bin/dask worker tcp://127.0.0.1:8786 --nworkers 2 --nthreads 1
    DASK_SCHEDULER_ADDRESS=tcp://127.0.0.1:8786 make run

Use one thread per worker process (`--nthreads 1`) and as many worker processes as
cores: the work is mostly pure Python that holds the GIL. On other machines, point the
workers at the scheduler's reachable address instead of 127.0.0.1. The scheduler's
dashboard listens on :8787 (`--dashboard-address 127.0.0.1:8787` keeps it local).

When the scheduler cannot be reached, has no workers, or its workers cannot import the
project, `attach_dask` leaves the local pools alone and says why in one plain sentence.
If the scheduler goes away later, chunks in flight are re-run on the manager's threads
and, once the client gives up reconnecting, the pool goes back to local processes.

Chunks in flight
----------------
A client cannot add machines: the cluster is whatever workers joined the scheduler. The
pool's `workers` is how many chunks the manager keeps on the cluster at once; it starts
at the cluster's total threads (`attach_dask(..., chunks_per_thread=2)` queues one more
per thread, hiding the scheduler's round trip of ~10 ms per chunk) and
`manager.configure(pool, workers=n)` changes it. The manager's MAX_TOTAL_WORKERS and
MAX_WORKERS_PER_USER still cap chunks in flight, on a cluster as on local processes.

What a dead worker means here
-----------------------------
Dask itself re-runs a task whose worker died, up to `distributed.scheduler.allowed-failures`
times (3 by default); after that the task fails with `KilledWorker`. That, a closed
connection while fetching a result, a lost result, or losing the scheduler all become
`BrokenProcessPool` for the manager, which re-runs the chunk's items one by one. A chunk
the manager times out is cancelled and the workers running it are restarted (this needs
the nanny, which `dask worker` starts by default).
"""
from __future__ import annotations

import itertools
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from config.threading_config import BackendName
    from utils.threading_manager import ThreadingManager

log = logging.getLogger(__name__)

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INFO_TIMEOUT_S = 3.0  # the Performance page must never hang on a slow scheduler
CLOSE_TIMEOUT_S = 2.0
RESTART_WAIT_S = 30.0  # a clean shutdown waits this long for stuck workers to be restarted
# Generations count up from a million so they never match a local ProcessWorkers generation of the
# same pool (a local chunk still finishing after attach_dask must not fail the cluster's chunks).
_generations = itertools.count(1_000_000)


def _worker_check() -> dict:
    """Runs on each worker at attach time: can it import the project's code?"""
    import importlib
    import sys

    importlib.import_module("streamlit_app")
    runner = importlib.import_module("utils.chunk_runner")
    return {"python": sys.version.split()[0], "pid": os.getpid(),
            "project": os.path.dirname(os.path.dirname(os.path.abspath(runner.__file__ or "")))}


def _worker_pid() -> int:
    return os.getpid()


def _dead_worker_error(exc: BaseException) -> bool:
    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    return isinstance(exc, (KilledWorker, CommClosedError, OSError))


def _task_label(args: tuple) -> str:
    """A readable task-group name for the Dask dashboard: the mapped function's name."""
    fn = args[0] if args else None
    fn = getattr(fn, "func", fn)  # functools.partial
    name = getattr(fn, "__name__", "chunk")
    return re.sub(r"[^A-Za-z0-9_]", "_", name) or "chunk"


class _InitializerPlugin:
    """Runs a pool initializer once in every Dask worker, present and future (see SpindleInitializer)."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn

    def setup(self, worker: Any) -> None:
        self.fn()


def __getattr__(name: str) -> Any:
    """`SpindleInitializer`, a WorkerPlugin, is built on first use so that importing this
    module does not import `distributed`; pickle finds it here on the workers too."""
    if name == "SpindleInitializer":
        from distributed import WorkerPlugin

        cls = type("SpindleInitializer", (_InitializerPlugin, WorkerPlugin), {"__module__": __name__})
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _make_plugin(fn: Callable[[], None]) -> Any:
    cls = globals().get("SpindleInitializer") or __getattr__("SpindleInitializer")
    return cls(fn)


@dataclass
class _Pending:
    future: Future
    dask_future: Any
    generation: int


class DaskWorkers:
    """A process backend for the threading manager whose workers are a Dask cluster.

    Same methods as `utils.process_workers.ProcessWorkers`. One Dask task per chunk; the
    returned `concurrent.futures.Future` is completed from the Dask future's done callback.
    """

    def __init__(self, name: str, workers: int, client: Any, address: str,
                 initializer: Callable[[], None] | None = None) -> None:
        self.name = name
        self.workers = workers
        self.client = client
        self.address = address
        self._lock = threading.Lock()  # guards _pending, _closed, generation and the counters
        self._pending: dict[str, _Pending] = {}
        self._closed = False
        self.generation = next(_generations)
        self.chunks_sent = 0
        self.rebuilds = 0  # chunks timed out: their workers were restarted
        self.worker_deaths = 0  # chunks that came back from a dead worker (or a lost scheduler)
        self._initializer = initializer
        self._plugin_lock = threading.Lock()  # guards _plugin_set: one initializer plugin registered at a time
        self._plugin_name = f"spindle-initializer-{name}"
        self._plugin_set = False
        self.dashboard_link: str | None = None
        self._restore: tuple[BackendName, int] | None = None  # the pool's local backend and workers, for detach_dask
        self._restarts: list[threading.Thread] = []  # workers being restarted after a timeout
        # Called once, in a thread of its own, when the client gave up reconnecting to the
        # scheduler: attach_dask uses it to give the pool back to local processes.
        self.on_lost: Callable[[], None] | None = None
        self._lost_reported = False
        if initializer is not None:
            self.set_initializer(initializer)

    # ------------------------------------------------------------------ the manager's interface
    def submit(self, fn: Callable, *args: Any) -> tuple[Future, int]:
        """Send one chunk to the cluster; say which generation took it (see `rebuild`)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the Dask backend is shut down")
            status = getattr(self.client, "status", "running")
            if status != "running":
                if status in ("closing", "closed", "failed"):
                    self._lost()
                raise RuntimeError(f"lost the Dask scheduler at {self.address} (client {status})")
            generation = self.generation
            key = f"{_task_label(args)}-{uuid.uuid4().hex}"
            future: Future = Future()
            future.set_running_or_notify_cancel()  # only this backend completes it
            dask_future = self.client.submit(fn, *args, key=key, pure=False)
            self._pending[key] = _Pending(future, dask_future, generation)
            self.chunks_sent += 1
        dask_future.add_done_callback(self._settle)
        return future, generation

    def resize(self, workers: int) -> None:
        """How many chunks the manager keeps in flight on the cluster (the pool's `workers`).

        A client cannot add machines to a cluster: its size is whatever workers are
        connected to the scheduler (start more `dask worker` processes, or use an adaptive
        cluster). `attach_dask` starts from the cluster's total threads, so every worker
        thread has one chunk; more keeps a chunk queued per worker to hide the round trip,
        fewer leaves part of a shared cluster to other clients.
        """
        with self._lock:
            self.workers = workers

    def warm(self) -> None:
        """Wait for a worker, and make every worker import the project's code now."""
        self.client.wait_for_workers(1, timeout=30)
        self.client.run(_worker_check)

    def set_initializer(self, initializer: Callable[[], None] | None) -> None:
        """Run `initializer` once in every worker (present ones now, new ones as they join).

        Registered in the background: the manager calls this under its lock, and a warm-up
        may take seconds on every worker. Chunks sent meanwhile simply run un-warmed.
        """
        self._initializer = initializer
        threading.Thread(target=self._apply_initializer, args=(initializer,), daemon=True,
                         name=f"spindle-dask-init-{self.name}").start()

    def rebuild(self, generation: int, kill: bool) -> bool:
        """A dead worker needs nothing here: the nanny restarts it and Dask reschedules.

        With `kill` (the manager timed a chunk out), every chunk of that generation is
        failed with BrokenProcessPool (the manager re-runs the innocent ones), cancelled
        on the cluster, and the workers running them are restarted to stop the stuck code.
        True when this call did that.
        """
        with self._lock:
            if not kill or generation != self.generation or self._closed:
                return False
            self.generation = next(_generations)
            self.rebuilds += 1
            doomed = [p for p in self._pending.values() if p.generation == generation]
        error = BrokenProcessPool("a chunk on the Dask cluster timed out; its workers are being restarted")
        for pending in doomed:
            self._finish(pending.dask_future.key, error=error)
        restart = threading.Thread(target=self._stop_stuck, args=([p.dask_future for p in doomed],), daemon=True,
                                   name=f"spindle-dask-restart-{self.name}")
        self._restarts.append(restart)
        restart.start()
        return True

    def pids(self) -> list[int]:
        """Worker processes live on the cluster's machines, not here (see `worker_pids`)."""
        return []

    def worker_pids(self) -> dict[str, int]:
        """Each worker's process id, by worker address (meaningful on the worker's machine)."""
        return self.client.run(_worker_pid)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._pending)

    def shutdown(self, wait: bool, kill: bool) -> None:
        """Close the client; the cluster itself keeps running (it is not ours to stop)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pending = list(self._pending.values())
        if kill and pending:
            try:
                self.client.cancel([p.dask_future for p in pending], force=True)
            except Exception:  # noqa: BLE001 - the scheduler may be gone already
                pass
            for p in pending:
                self._finish(p.dask_future.key, error=CancelledError("the Dask backend was shut down"))
        elif wait and pending:
            wait_futures([p.future for p in pending])
        if wait and not kill:
            for restart in self._restarts:  # a stuck worker is only restarted while the client is open
                restart.join(RESTART_WAIT_S)
        try:
            self.client.close(timeout=CLOSE_TIMEOUT_S)
        except Exception:  # noqa: BLE001
            log.debug("closing the Dask client failed", exc_info=True)
        with self._lock:
            left = list(self._pending)
        for key in left:  # callbacks stop once the client is closed: never leave a chunk hanging
            self._finish(key, error=BrokenProcessPool("the Dask backend was shut down"))

    # ------------------------------------------------------------------ internals
    def _finish(self, key: str, value: Any = None, error: BaseException | None = None) -> bool:
        """Complete the chunk's future once, whoever gets here first (callback, timeout, shutdown)."""
        with self._lock:
            pending = self._pending.pop(key, None)
        if pending is None:
            return False
        if error is not None:
            pending.future.set_exception(error)
        else:
            pending.future.set_result(value)
        return True

    def _settle(self, dask_future: Any) -> None:
        """On Dask's callback thread: translate the task's outcome for the manager."""
        key = dask_future.key
        with self._lock:
            if key not in self._pending:
                return
        try:
            self._translate(key, dask_future)
        except Exception:  # noqa: BLE001 - never leave the manager waiting on a chunk
            log.exception("Dask chunk %s: its outcome could not be read", key)
            self._finish(key, error=BrokenProcessPool("the Dask result could not be read"))

    def _translate(self, key: str, dask_future: Any) -> None:
        try:
            if dask_future.status == "lost":
                raise BrokenProcessPool("the result was lost with its Dask worker")
            value = dask_future.result()
        except CancelledError as exc:
            if getattr(exc, "reason", "") == "scheduler-connection-lost" or self._closed:
                self._note_death()
                self._finish(key, error=BrokenProcessPool(f"lost the Dask scheduler at {self.address}: "
                                                          f"{_short(exc)}"))
            else:
                self._finish(key, error=CancelledError(_short(exc)))
        except BrokenProcessPool as exc:
            self._note_death()
            self._finish(key, error=exc)
        except Exception as exc:  # noqa: BLE001 - the task's own error goes to the manager as it is
            if _dead_worker_error(exc):
                self._note_death()
                broken = BrokenProcessPool(f"a Dask worker died while running this chunk "
                                           f"({type(exc).__name__}: {_short(exc)})")
                broken.__cause__ = exc
                self._finish(key, error=broken)
            else:
                self._finish(key, error=exc)
        else:
            self._finish(key, value=value)

    def _lost(self) -> None:
        """The client closed for good (it could not reconnect): tell the owner once."""
        if self._lost_reported or self.on_lost is None:
            return
        self._lost_reported = True
        threading.Thread(target=self.on_lost, daemon=True, name=f"spindle-dask-lost-{self.name}").start()

    def _note_death(self) -> None:
        with self._lock:
            self.worker_deaths += 1

    def _stop_stuck(self, futures: list) -> None:
        keys = {f.key for f in futures}
        try:
            processing = self.client.processing()
            stuck = [worker for worker, running in processing.items() if keys & set(running)]
            self.client.cancel(futures, force=True)
            if stuck:
                log.warning("restarting Dask workers %s: a chunk timed out on them", ", ".join(stuck))
                self.client.restart_workers(stuck, raise_for_error=False)
        except Exception as exc:  # noqa: BLE001 - best effort; the chunks are already re-run elsewhere
            (log.debug if self._closed else log.warning)("could not restart stuck Dask workers: %s", exc)

    def _apply_initializer(self, initializer: Callable[[], None] | None) -> None:
        with self._plugin_lock:
            if self._closed or initializer is not self._initializer:
                return  # superseded by a later call
            try:
                if initializer is None:
                    if self._plugin_set:
                        self.client.unregister_worker_plugin(self._plugin_name)
                        self._plugin_set = False
                else:
                    self.client.register_plugin(_make_plugin(initializer), name=self._plugin_name)
                    self._plugin_set = True
            except Exception as exc:  # noqa: BLE001 - an initializer only warms workers up
                log.warning("could not set the initializer on the Dask workers: %s", exc)


# ---------------------------------------------------------------------- attaching to a manager
@dataclass(frozen=True)
class DaskStatus:
    address: str
    connected: bool
    message: str
    pool: str = "cpu"
    workers: int = 0
    threads: int = 0
    dashboard_link: str | None = None


def _fallback(address: str, pool: str, why: str, reached: bool = False) -> DaskStatus:
    what = "cannot use the Dask cluster at" if reached else "cannot reach the Dask scheduler at"
    message = f"{what} {address}: {why}; work runs on the local pools"
    log.warning(message)
    return DaskStatus(address, False, message, pool)


def _short(exc: BaseException) -> str:
    """One line, at most 200 characters, and never an error of its own."""
    try:
        text = " ".join(str(exc).split()) or type(exc).__name__
    except Exception:  # noqa: BLE001 - e.g. a KilledWorker whose last worker is unknown
        text = type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _tcp_unreachable(address: str, timeout: float) -> str | None:
    """Why a tcp:// scheduler cannot be reached, in a few words; None when it answers (or is not tcp).

    A plain socket first: a refused port is known at once, without Dask's retries until the timeout.
    """
    import socket
    from urllib.parse import urlsplit

    if "://" not in address:
        address = f"tcp://{address}"  # Dask's default protocol
    if not address.startswith("tcp://"):
        return None
    try:
        parts = urlsplit(address)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None  # let Client say what is wrong with the address
    if not host or not port:
        return None
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror:
        return f"unknown host {host!r}"
    except TimeoutError:
        return f"no answer after {timeout:g} s"
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()


def _dashboard(client: Any) -> str | None:
    """The dashboard link, only when the scheduler really serves one (bokeh, no --no-dashboard)."""
    try:
        link = client.dashboard_link
    except Exception:  # noqa: BLE001
        return None
    if not link:
        return None
    try:
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an HTTP proxy
        with opener.open(link, timeout=1.0) as response:
            return link if response.status == 200 else None
    except Exception:  # noqa: BLE001 - 404 without bokeh, or not reachable from here
        return None


def _dask_backend(manager: ThreadingManager, pool: str) -> DaskWorkers | None:
    backend = manager.pool_backend(pool)
    return backend if isinstance(backend, DaskWorkers) else None


def attach_dask(manager: ThreadingManager, address: str, pool: str = "cpu", timeout: float = 5.0, *,
                chunks_per_thread: int = 1) -> DaskStatus:
    """Connect to a Dask scheduler and run `pool`'s process work on its cluster.

    On success the pool's backend becomes "dask" (a `DaskWorkers`) and its
    `workers` (chunks in flight) the cluster's total threads times `chunks_per_thread`.
    With 2, each worker thread has a chunk queued behind the running one, which hides
    the ~10 ms scheduler round trip per chunk (see benchmarks/bench_dask.py). On any
    failure the local pools are left as they are and the status says why, in one
    sentence a person can act on.
    """
    if chunks_per_thread < 1:
        raise ValueError(f"chunks_per_thread must be at least 1, not {chunks_per_thread}")
    address = address.strip()
    settings = manager.pool_settings(pool)  # ValueError for an unknown pool, before any network
    try:
        from distributed import Client
    except ImportError as exc:
        return _fallback(address, pool, f"the distributed package is not installed ({exc})")
    unreachable = _tcp_unreachable(address, timeout)
    if unreachable:
        return _fallback(address, pool, unreachable)
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except Exception as exc:  # noqa: BLE001 - refused, timed out, bad address: all mean "not here"
        return _fallback(address, pool, _short(exc))
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except Exception:  # noqa: BLE001
            raise RuntimeError(f"it has no workers after {timeout:g} s (start some with dask worker)") from None
        checks = client.run(_worker_check, on_error="return")
        broken = {w: r for w, r in checks.items() if isinstance(r, BaseException)}
        if broken:
            worker, failure = next(iter(broken.items()))
            detail = (_short(failure) if type(failure) is Exception
                      else f"{type(failure).__name__}: {_short(failure)}")
            raise RuntimeError(f"{len(broken)} of {len(checks)} workers cannot import Spindle's code "
                               f"({worker}: {detail}); start them with "
                               f"PYTHONPATH={PROJECT_ROOT} in the project's environment")
        info = client.scheduler_info(n_workers=-1)
        threads = sum(w.get("nthreads", 0) for w in info.get("workers", {}).values())
        n_workers = len(info.get("workers", {}))
        if threads < 1:
            raise RuntimeError("its workers have no threads")
    except Exception as exc:  # noqa: BLE001
        try:
            client.close(timeout=CLOSE_TIMEOUT_S)
        except Exception:  # noqa: BLE001
            pass
        return _fallback(address, pool, _short(exc), reached=True)

    if _dask_backend(manager, pool) is not None:
        detach_dask(manager, pool)
    in_flight = threads * chunks_per_thread
    settings = manager.pool_settings(pool)  # again: detach_dask may just have restored it
    backend = DaskWorkers(pool, in_flight, client, address, settings["initializer"])
    backend.dashboard_link = _dashboard(client)
    backend.on_lost = lambda: _after_loss(manager, pool, backend)
    backend._restore = (settings["backend"], settings["workers"])
    old = manager.set_backend(pool, backend, name="dask", workers=in_flight)
    if old is not None:
        old.shutdown(wait=False, kill=False)  # idle local workers exit; chunks already running finish
    message = (f"running the {pool!r} pool on the Dask cluster at {address}: {n_workers} workers, "
               f"{threads} threads, up to {in_flight} chunks in flight")
    log.info(message)
    return DaskStatus(address, True, message, pool, n_workers, threads, backend.dashboard_link)


def _after_loss(manager: ThreadingManager, pool: str, backend: DaskWorkers) -> None:
    if manager.pool_backend(pool) is not backend:
        return
    log.warning("lost the Dask scheduler at %s for good; the %r pool runs on local processes again",
                backend.address, pool)
    detach_dask(manager, pool, wait=False)


def detach_dask(manager: ThreadingManager, pool: str | None = None, wait: bool = True) -> bool:
    """Go back to local processes (`pool`, or every pool on Dask); True when one was detached.

    New chunks go to the local pool at once; with `wait`, chunks on the cluster finish first.
    """
    names = [pool] if pool is not None else manager.pool_names()
    detached = False
    for name in names:
        backend = _dask_backend(manager, name)
        if backend is None:
            continue
        local: BackendName
        local, workers = backend._restore or ("process", manager.config.pools[name].workers)
        if manager.set_backend(name, None, name=local, workers=workers, expect=backend) is not backend:
            continue  # someone else swapped it meanwhile
        backend.shutdown(wait=wait, kill=False)
        detached = True
    return detached


def attach_from_settings(manager: ThreadingManager, settings: Any, timeout: float = 5.0) -> DaskStatus | None:
    """`DASK_SCHEDULER_ADDRESS` set: attach the "cpu" pool to that cluster; None when it is empty."""
    address = (getattr(settings, "dask_scheduler_address", "") or "").strip()
    if not address:
        return None
    return attach_dask(manager, address, timeout=timeout)


def cluster_info(manager: ThreadingManager, pool: str = "cpu") -> dict | None:
    """What the Performance page shows about the cluster; None when `pool` runs locally.

    Keys: address, status, workers, threads, memory_limit_bytes, memory_used_bytes,
    in_flight (chunks sent and not back), max_in_flight (the pool's workers), processing
    (tasks running or queued on workers, all clients), dashboard_link (or None), chunks_sent,
    worker_deaths (chunks back from a dead worker), rebuilds (timed-out chunks), per_worker
    (address, name, threads, memory_limit_bytes, memory_used_bytes, cpu_percent, processing),
    error (why the numbers are missing, or None).
    """
    backend = _dask_backend(manager, pool)
    if backend is None:
        return None
    client = backend.client
    info: dict[str, Any] = {
        "address": backend.address, "status": getattr(client, "status", "unknown"), "workers": 0, "threads": 0,
        "memory_limit_bytes": 0, "memory_used_bytes": 0, "in_flight": backend.in_flight(),
        "max_in_flight": manager.pool_settings(pool)["workers"], "processing": 0,
        "dashboard_link": backend.dashboard_link, "chunks_sent": backend.chunks_sent,
        "worker_deaths": backend.worker_deaths,
        "rebuilds": backend.rebuilds, "per_worker": [], "error": None,
    }
    if info["status"] != "running":
        if info["status"] in ("closing", "closed", "failed"):
            backend._lost()
        info["error"] = f"not connected to the Dask scheduler at {backend.address} (client {info['status']})"
        return info
    try:
        identity = client.sync(client.scheduler.identity, n_workers=-1, callback_timeout=INFO_TIMEOUT_S)
        processing = client.sync(client.scheduler.processing, callback_timeout=INFO_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - a slow or vanished scheduler must not break the page
        info["error"] = f"the Dask scheduler at {backend.address} did not answer: {_short(exc)}"
        return info
    rows = []
    for address, worker in sorted(identity.get("workers", {}).items()):
        metrics = worker.get("metrics", {})
        rows.append({"address": address, "name": str(worker.get("name", address)),
                     "threads": int(worker.get("nthreads", 0)),
                     "memory_limit_bytes": int(worker.get("memory_limit") or 0),
                     "memory_used_bytes": int(metrics.get("memory") or 0),
                     "cpu_percent": float(metrics.get("cpu") or 0.0),
                     "processing": len(processing.get(address, ()))})
    info.update(workers=len(rows), threads=sum(r["threads"] for r in rows),
                memory_limit_bytes=sum(r["memory_limit_bytes"] for r in rows),
                memory_used_bytes=sum(r["memory_used_bytes"] for r in rows),
                processing=sum(r["processing"] for r in rows), per_worker=rows)
    return info
