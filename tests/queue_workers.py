"""Item functions for the task-queue tests; importable by worker threads and processes."""
from __future__ import annotations

import time


def slow_square(item: dict, params: dict) -> dict:
    time.sleep(params.get("delay", 0.0))
    if item.get("bad"):
        raise ValueError(f"item {item['n']} is marked bad")
    return {"n": item["n"], "square": item["n"] ** 2}


def add(a: int, b: int) -> int:
    return a + b
