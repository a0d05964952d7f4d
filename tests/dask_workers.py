"""Worker functions for the Dask backend tests.

Dask workers unpickle functions by reference, so each one lives at module level in
a module the workers can import (they run with the project root on PYTHONPATH).
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import time


def slow_square(x: int) -> int:
    """10 ms of waiting per item: a job long enough to kill a worker in the middle of it."""
    time.sleep(0.01)
    return x * x


def square_or_die(x: int) -> int:
    """-1 kills the worker process running it (like a segfault or the OOM killer); 7s fail plainly."""
    if x == -1:
        if multiprocessing.parent_process() is None and "dask" not in " ".join(sys.argv):
            raise RuntimeError("the killer item ran in the test runner, not in a worker process")
        os._exit(1)
    if x % 7 == 0:
        raise ValueError(f"bad input {x}")
    return x * x


def record_pid() -> None:
    """An initializer: note that it ran in this process."""
    os.environ["SPINDLE_TEST_INITIALIZED"] = str(os.getpid())


def initialized(_x) -> str:
    return os.environ.get("SPINDLE_TEST_INITIALIZED", "")


def square_or_hang(x: int) -> int:
    """-2 never finishes in time: the manager must time it out and have its worker restarted."""
    if x == -2:
        time.sleep(120)
    return x * x


def worker_pid(_x) -> int:
    time.sleep(0.005)
    return os.getpid()


def validate_with_defaults(record: dict) -> dict:
    """The validation page's per-record check with default options (None fails with AttributeError)."""
    from streamlit_app.validation.record_check import validate_record

    return validate_record(record, {})
