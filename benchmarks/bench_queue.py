"""Durable jobs: what per-chunk persistence costs, what leases cost, and how long a lone user waits behind a flood.

Runs on a fresh manager and a SQLite store in a temporary folder; prints ratios. The lease
benchmark starts real server processes (this module with --server) on one SQLite file.
"""
from __future__ import annotations

import functools
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.settings import load_settings  # noqa: E402
from utils.services import open_services  # noqa: E402
from utils.task_queue import call_item  # noqa: E402
from utils.task_registry import task  # noqa: E402
from utils.threading_manager import ThreadingManager  # noqa: E402

FN = "bench.simulated_call"


@task(FN)
def simulated_call(item: int, params: dict) -> dict:
    """An item that waits like a small remote call (params["wait_s"])."""
    time.sleep(params["wait_s"])
    return {"n": item, "double": item * 2}


def _services(folder: str):
    return open_services(load_settings({"SPINDLE_DATA_DIR": folder}), manager=ThreadingManager())


def bench_durability(items: int = 20_000, wait_s: float = 0.001, rounds: int = 5) -> dict:
    """The same job kept in memory, then stored per chunk (job, items, results) in SQLite.

    Rounds alternate the two, and each side's median counts: the machine's other load hits both alike.
    """
    memory, durable, stored, status = [], [], 0, {}
    with tempfile.TemporaryDirectory() as folder:
        services = _services(folder)
        services.manager.map(functools.partial(call_item, simulated_call, {"wait_s": wait_s}), range(items // 4),
                             kind="thread", owner="bench").result()  # warm-up: threads started, concurrency grown
        for number in range(rounds):
            params = {"wait_s": wait_s, "round": number}
            started = time.perf_counter()
            services.manager.map(functools.partial(call_item, simulated_call, params), range(items), kind="thread",
                                 owner="bench").result()  # the same user, so the same fair share
            memory.append(time.perf_counter() - started)
            started = time.perf_counter()
            job_id = services.queue.submit_batch(FN, list(range(items)), owner="bench", kind="bench", params=params,
                                                 exec_kind="thread")
            status = services.queue.wait(job_id)
            services.queue.flush()
            durable.append(time.perf_counter() - started)
            stored = services.store.item_counts(job_id)["completed"]
        services.manager.shutdown(cancel_futures=True)
        services.close()
    memory_s, durable_s = statistics.median(memory), statistics.median(durable)
    figures = {"items": items, "item_wait_ms": wait_s * 1000, "memory_s": round(memory_s, 3),
               "durable_s": round(durable_s, 3), "ratio": round(durable_s / memory_s, 2), "stored": stored,
               "status": status["status"]}
    verdict = "PASS" if figures["ratio"] <= 1.3 else "MISS"
    print(f"durability: {items:,} items of {wait_s * 1000:g} ms, stored per chunk {durable_s:.2f}s vs in memory "
          f"{memory_s:.2f}s = {figures['ratio']}x (goal <= 1.3x: {verdict}; medians of {rounds} alternating rounds); "
          f"{stored:,} results stored")
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


LEASE_JOBS, LEASE_ITEMS, LEASE_WAIT_S = 8, 1500, 0.005


def _lease_jobs(store: Any) -> list[str]:
    """Jobs no server owns yet, as pages on any server would leave them; each server claims what it runs."""
    ids = []
    for number in range(LEASE_JOBS):
        job_id = f"lease{number}"
        params = {"wait_s": LEASE_WAIT_S, "_exec": {"pool": None, "kind": "thread", "chunk_size": None,
                                                    "timeout": None, "retries": 0}}
        store.create_job({"id": job_id, "owner": f"user{number}", "kind": "bench", "fn": FN, "params": params,
                          "total": LEASE_ITEMS, "status": "pending"})
        store.add_items(job_id, [(n, n) for n in range(LEASE_ITEMS)])
        ids.append(job_id)
    return ids


def _run_servers(count: int) -> float:
    """Items per second from the first job start to the last job end, with `count` server processes."""
    from utils.store.sqlite_store import SQLiteStore

    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(Path(folder) / "spindle.sqlite3")
        ids = _lease_jobs(store)
        servers = [subprocess.Popen([sys.executable, __file__, "--server", folder, f"bench-{n}"],
                                    stdout=subprocess.DEVNULL) for n in range(count)]
        for server in servers:
            server.wait(timeout=600)
        jobs = [store.get_job(job_id) for job_id in ids]
        store.close()
    if any(job["status"] != "completed" or job["done"] != LEASE_ITEMS for job in jobs):
        raise RuntimeError(f"lease benchmark: not every job completed: {[j['status'] for j in jobs]}")
    span = max(j["finished_at"] for j in jobs) - min(j["started_at"] for j in jobs)
    return LEASE_JOBS * LEASE_ITEMS / span


def bench_leases(rounds: int = 3) -> dict:
    """The same jobs on one server, then on two servers sharing the store through leases (alternating rounds,
    medians: other load on the machine hits both alike)."""
    ones, twos = [], []
    for _ in range(rounds):
        ones.append(_run_servers(1))
        twos.append(_run_servers(2))
    one, two = statistics.median(ones), statistics.median(twos)
    ratio = two / one
    verdict = "PASS" if ratio >= 0.9 else "MISS"
    print(f"leases: {LEASE_JOBS} jobs x {LEASE_ITEMS} items of {LEASE_WAIT_S * 1000:g} ms, one server {one:,.0f} "
          f"items/s, two servers on one SQLite store {two:,.0f} items/s = {ratio:.2f}x (goal >= 0.9x: {verdict}; "
          f"medians of {rounds} alternating rounds)")
    return {"one_server_items_s": round(one), "two_servers_items_s": round(two), "ratio": round(ratio, 2)}


def _serve(folder: str, server_id: str) -> None:
    """A server process for bench_leases: claim jobs, run them, leave when none is unfinished."""
    services = open_services(load_settings({"SPINDLE_DATA_DIR": folder, "SPINDLE_SERVER_ID": server_id}))
    while services.store.list_jobs(statuses=["pending", "running"], limit=1):
        time.sleep(0.05)
    services.queue.flush(60)
    services.manager.shutdown(cancel_futures=True)
    services.close()


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--server":
        _serve(sys.argv[2], sys.argv[3])
        return
    bench_durability()
    bench_leases()
    bench_fairness()


if __name__ == "__main__":
    main()
