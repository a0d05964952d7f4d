"""Dask benchmark: the same CPU-bound batch on a 2-worker local Dask cluster and on local processes.

200,000 phone numbers (`streamlit_app.performance.validate_phone_number`, pure Python
that holds the GIL) go through the threading manager on:

- process: the "cpu" pool's warm local process pool (`kind="process"`, 2 workers);
- dask:    a Dask cluster of a scheduler and 2 single-threaded workers, started as
           subprocesses on 127.0.0.1, attached with the defaults (one chunk in flight
           per worker thread);
- dask x2: the same cluster with `chunks_per_thread=2` (a chunk queued behind each
           running one, hiding the scheduler's round trip).

Everything is warmed first (imports, phonenumbers' metadata). The ratio dask/process is
what one machine pays for the cluster's hand-off; the goal is <= 1.2x. Rounds alternate
so that a busy spell on the shared machine hits every side; the best round of each is
compared (figures on the shared 2-core machine vary by +-30 %).

Run: python -m benchmarks.bench_dask [items] [rounds]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from config.threading_config import load_threading_config  # noqa: E402
from streamlit_app.performance import validate_phone_number  # noqa: E402
from streamlit_app.validation.sample_data import sample_phone_numbers  # noqa: E402
from tests.dask_cluster import LocalDaskProcesses  # noqa: E402
from utils.dask_backend import attach_dask  # noqa: E402
from utils.threading_manager import ThreadingManager  # noqa: E402

GOAL = 1.2
WORKERS = 2


def _timed(manager: ThreadingManager, numbers: list[str], **kwargs) -> tuple[float, list, str]:
    started = time.perf_counter()
    job = manager.map(validate_phone_number, numbers, **kwargs)
    results = job.result()
    elapsed = time.perf_counter() - started
    return elapsed, results, job.progress().backend


def run(n: int = 200_000, rounds: int = 3) -> dict:
    numbers = sample_phone_numbers(n)
    warm_up = numbers[:4000]
    times: dict[str, list[float]] = {"process": [], "dask": [], "dask x2": []}
    managers: list[ThreadingManager] = []
    expected = None
    with LocalDaskProcesses(n_workers=WORKERS, threads=1) as cluster:
        try:
            local = ThreadingManager(load_threading_config())
            managers.append(local)
            local.configure("cpu", workers=WORKERS)
            local.warm("cpu")
            sides = [("process", local, {"kind": "process"})]
            for name, per_thread in (("dask", 1), ("dask x2", 2)):
                remote = ThreadingManager(load_threading_config())
                managers.append(remote)
                status = attach_dask(remote, cluster.address, timeout=30.0, chunks_per_thread=per_thread)
                if not status.connected:
                    raise RuntimeError(status.message)
                remote.warm("cpu")
                sides.append((name, remote, {"pool": "cpu"}))
            for _, manager, kwargs in sides:
                _timed(manager, warm_up, **kwargs)
            for _ in range(rounds):
                for name, manager, kwargs in sides:
                    seconds, results, backend = _timed(manager, numbers, **kwargs)
                    if backend not in ("process", "dask"):
                        raise RuntimeError(f"the {name} run went to {backend}")
                    expected = results if expected is None else expected
                    if results != expected:
                        raise RuntimeError(f"the {name} run returned different results")
                    times[name].append(seconds)
                    print(f"  {name:8s} {seconds:6.2f} s  ({n / seconds:,.0f} numbers/s)", flush=True)
        finally:
            for manager in managers:
                manager.shutdown(wait=False, cancel_futures=True)
    best = {name: min(values) for name, values in times.items()}
    return {"items": n, "valid": sum(bool(r) for r in expected or []), "best": best, "times": times,
            "ratio": best["dask"] / best["process"], "ratio_x2": best["dask x2"] / best["process"]}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    numbers = [int(arg) for arg in argv if arg.isdigit()]  # `python -m benchmarks bench_dask` passes names too
    n = numbers[0] if numbers else 200_000
    rounds = numbers[1] if len(numbers) > 1 else 3
    print(f"{n:,} phone numbers, {WORKERS} workers x 1 thread: local process pool vs local Dask cluster",
          flush=True)
    result = run(n, rounds)
    best = result["best"]
    for label, key in (("dask/process", "ratio"), ("dask x2/process", "ratio_x2")):
        verdict = "within" if result[key] <= GOAL else "OVER"
        print(f"{label:16s} = {result[key]:.2f}x ({verdict} the {GOAL:.1f}x goal)", flush=True)
    print(f"best of {rounds}: processes {best['process']:.2f} s, dask {best['dask']:.2f} s, "
          f"dask x2 {best['dask x2']:.2f} s", flush=True)


if __name__ == "__main__":
    main()
