"""A throwaway Dask cluster on 127.0.0.1 for tests and benchmarks: the `dask` command line, as a person runs it.

Moved out of utils/dask_backend.py: the product never starts a cluster, it only attaches to one.
"""
from __future__ import annotations

import os
from typing import Any

from utils.dask_backend import PROJECT_ROOT


def _stop_processes(processes: list) -> None:
    """SIGTERM each process group (workers first), then SIGKILL what is left; close the logs."""
    import signal
    import subprocess

    for process in reversed(processes):
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)  # its own session: the nanny and its worker
            except ProcessLookupError:
                pass
    for process in reversed(processes):
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=5)
        process.log_file.close()
    processes.clear()


class LocalDaskProcesses:
    """A scheduler and worker processes on 127.0.0.1, started with the `dask` command line.

    For tests and benchmarks: the same commands a person would type (see the module
    docstring), each worker with its own nanny, the project root on PYTHONPATH, and
    nothing listening beyond 127.0.0.1. `stop()` (or leaving the `with` block, or this
    object being collected, or the interpreter exiting) ends every process it started.
    As a safety net for a parent killed outright, the scheduler exits after
    `idle_timeout` seconds without tasks and the workers 30 s after losing it.
    """

    def __init__(self, n_workers: int = 2, threads: int = 1, allowed_failures: int | None = None,
                 env: dict[str, str] | None = None, project_on_path: bool = True,
                 idle_timeout: float | None = 300.0) -> None:
        import multiprocessing
        import sys
        import tempfile
        import weakref

        if multiprocessing.parent_process() is not None:
            # A spawned or forkserver child re-running a script's top level: starting a cluster
            # here would start one per child. Guard the script with `if __name__ == "__main__":`.
            raise RuntimeError("LocalDaskProcesses must not start inside a multiprocessing child process")
        self.n_workers = n_workers
        self.threads = threads
        self.idle_timeout = idle_timeout
        self._dir = tempfile.TemporaryDirectory(prefix="spindle-dask-")
        self._processes: list[Any] = []
        self._finalizer = weakref.finalize(self, _stop_processes, self._processes)
        self.address = ""
        dask_cli = os.path.join(os.path.dirname(sys.executable), "dask")
        self._cli = [dask_cli] if os.path.exists(dask_cli) else [sys.executable, "-m", "dask"]
        self._env = dict(os.environ)
        self._env.update(env or {})
        if project_on_path:
            self._env["PYTHONPATH"] = os.pathsep.join(
                p for p in (PROJECT_ROOT, self._env.get("PYTHONPATH", "")) if p)
        else:  # only to show what a worker without the project root says
            self._env.pop("PYTHONPATH", None)
        if allowed_failures is not None:
            self._env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = str(allowed_failures)

    def __enter__(self) -> LocalDaskProcesses:
        self.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.stop()

    def _spawn(self, args: list[str], log_name: str) -> Any:
        import subprocess

        log_file = open(os.path.join(self._dir.name, log_name), "wb")  # noqa: SIM115 - closed in stop()
        try:
            process = subprocess.Popen(self._cli + args, env=self._env, stdout=log_file, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, cwd=self._dir.name, start_new_session=True)
        except BaseException:
            log_file.close()
            raise
        process.log_file = log_file  # type: ignore[attr-defined]
        self._processes.append(process)
        return process

    def start(self, timeout: float = 60.0) -> str:
        """Start the scheduler and the workers and wait for them; on any failure, stop them all."""
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> str:
        import json
        import time

        scheduler_file = os.path.join(self._dir.name, "scheduler.json")
        args = ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                "--dashboard-address", "127.0.0.1:0", "--scheduler-file", scheduler_file]
        if self.idle_timeout:
            args += ["--idle-timeout", f"{self.idle_timeout:g}s"]
        scheduler = self._spawn(args, "scheduler.log")
        deadline = time.monotonic() + timeout
        while not self.address:
            if scheduler.poll() is not None:
                raise RuntimeError(f"the Dask scheduler exited: {self.log('scheduler.log')[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("the Dask scheduler did not start in time")
            try:
                with open(scheduler_file, encoding="utf-8") as handle:
                    self.address = json.load(handle)["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.05)
        for i in range(self.n_workers):
            self.add_worker(f"worker-{i}")
        if self.n_workers:
            self.wait_for_workers(self.n_workers, max(1.0, deadline - time.monotonic()))
        return self.address

    def add_worker(self, name: str) -> Any:
        return self._spawn(["worker", self.address, "--name", name, "--nworkers", "1", "--nthreads",
                            str(self.threads), "--host", "127.0.0.1", "--no-dashboard", "--dashboard-address",
                            "127.0.0.1:0", "--local-directory", self._dir.name, "--death-timeout", "30"],
                           f"{name}.log")

    def wait_for_workers(self, n: int, timeout: float = 60.0) -> None:
        from distributed import Client

        with Client(self.address, timeout=timeout, set_as_default=False) as client:
            client.wait_for_workers(n, timeout=timeout)

    def kill_scheduler(self) -> None:
        """SIGKILL the scheduler (to try losing it); its workers give up after their death timeout."""
        import signal

        try:
            os.killpg(self._processes[0].pid, signal.SIGKILL)
        except (IndexError, ProcessLookupError):
            pass

    def log(self, name: str) -> str:
        try:
            with open(os.path.join(self._dir.name, name), encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError:
            return ""

    def stop(self) -> None:
        _stop_processes(self._processes)
        self._dir.cleanup()
