"""Durable jobs: what per-chunk persistence costs, and how long a lone user waits behind a flood.

Runs on a fresh manager and a SQLite store in a temporary folder; prints ratios.
"""
from __future__ import annotations

import functools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.settings import load_settings  # noqa: E402
from utils.services import open_services  # noqa: E402
from utils.task_queue import call_item  # noqa: E402
from utils.threading_manager import ThreadingManager  # noqa: E402

FN = "benchmarks.bench_queue:simulated_call"


def simulated_call(item: int, params: dict) -> dict:
    """An item that waits like a small remote call (params["wait_s"])."""
    time.sleep(params["wait_s"])
    return {"n": item, "double": item * 2}


def _services(folder: str):
    return open_services(load_settings({"SPINDLE_DATA_DIR": folder}), manager=ThreadingManager())


def bench_durability(items: int = 20_000, wait_s: float = 0.001) -> dict:
    """The same job kept in memory, then stored per chunk (job, items, results) in SQLite."""
    with tempfile.TemporaryDirectory() as folder:
        services = _services(folder)
        params = {"wait_s": wait_s}
        started = time.perf_counter()
        services.manager.map(functools.partial(call_item, FN, params), range(items), kind="thread",
                             owner="bench").result()  # the same user, so the same fair share
        memory_s = time.perf_counter() - started
        started = time.perf_counter()
        job_id = services.queue.submit_batch(FN, list(range(items)), owner="bench", kind="bench", params=params,
                                             exec_kind="thread")
        status = services.queue.wait(job_id)
        durable_s = time.perf_counter() - started
        stored = services.store.item_counts(job_id)["completed"]
        services.manager.shutdown(cancel_futures=True)
        services.close()
    figures = {"items": items, "item_wait_ms": wait_s * 1000, "memory_s": round(memory_s, 3),
               "durable_s": round(durable_s, 3), "ratio": round(durable_s / memory_s, 2), "stored": stored,
               "status": status["status"]}
    verdict = "PASS" if figures["ratio"] <= 1.3 else "MISS"
    print(f"durability: {items:,} items of {wait_s * 1000:g} ms, stored per chunk {durable_s:.2f}s vs in memory "
          f"{memory_s:.2f}s = {figures['ratio']}x (goal <= 1.3x: {verdict}); {stored:,} results stored")
    return figures


def bench_fairness(jobs: int = 10, items: int = 40, wait_s: float = 0.02) -> dict:
    """User B's one job: alone, then submitted just after user A's flood of jobs."""
    with tempfile.TemporaryDirectory() as folder:
        services = _services(folder)
        queue = services.queue

        def run_b(tag: str) -> float:
            started = time.perf_counter()
            job_id = queue.submit_batch(FN, list(range(items)), owner="user-b", kind="bench",
                                        params={"wait_s": wait_s, "tag": tag}, exec_kind="thread", chunk_size=1)
            queue.wait(job_id)
            return time.perf_counter() - started

        alone = run_b("alone")
        flood = [queue.submit_batch(FN, list(range(items)), owner="user-a", kind="bench",
                                    params={"wait_s": wait_s, "k": k}, exec_kind="thread", chunk_size=1)
                 for k in range(jobs)]
        crowded = run_b("crowded")
        for job_id in flood:
            queue.wait(job_id)
        services.manager.shutdown(cancel_futures=True)
        services.close()
    ratio = crowded / alone
    verdict = "PASS" if ratio <= 2.0 else "MISS"
    print(f"fairness: user B's job alone {alone:.2f}s, behind user A's {jobs} jobs {crowded:.2f}s = {ratio:.2f}x "
          f"(goal <= 2x: {verdict})")
    return {"alone_s": round(alone, 3), "crowded_s": round(crowded, 3), "ratio": round(ratio, 2)}


def main() -> None:
    bench_durability()
    bench_fairness()


if __name__ == "__main__":
    main()
