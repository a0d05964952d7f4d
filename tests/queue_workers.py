"""Item functions for the task-queue tests; importable by worker threads and processes.

Registered as tasks at import (the queue runs only registered tasks): a test or a
test server process imports this module before it submits or resumes jobs.
"""
from __future__ import annotations

import os
import time

from utils.task_registry import task


@task("test.slow_square")
def slow_square(item: dict, params: dict) -> dict:
    time.sleep(params.get("delay", 0.0))
    if item.get("bad"):
        raise ValueError(f"item {item['n']} is marked bad")
    return {"n": item["n"], "square": item["n"] ** 2}


@task("test.counted_square")
def counted_square(item: dict, params: dict) -> dict:
    """slow_square that also appends "<n>\\n" to params["log"], so a test can count every execution."""
    with open(params["log"], "a", encoding="utf-8") as log:  # O_APPEND: one line per write, even across processes
        log.write(f"{item['n']}\n")
    time.sleep(params.get("delay", 0.0))
    return {"n": item["n"], "square": item["n"] ** 2, "pid": os.getpid()}


@task("test.add")
def add(a: int, b: int) -> int:
    return a + b
