"""Sequential-vs-parallel benchmarks on the shared manager, with a verdict and a recommendation.

The page starts `run_benchmark` on the manager and polls a BenchmarkRun; nothing
here touches the UI. Times are measured side by side in one run.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from utils.threading_manager import ThreadingManager


@dataclass
class Measurement:
    workers: int
    chunk_size: int | None
    seconds: float
    speedup: float
    efficiency: float  # speedup / workers: 1.0 is the ideal line
    backend: str
    reason: str
    chunk_used: int | None


@dataclass
class BenchmarkResult:
    workload: str
    items: int
    sequential_s: float
    measurements: list[Measurement] = field(default_factory=list)

    @property
    def best(self) -> Measurement | None:
        return min(self.measurements, key=lambda m: m.seconds) if self.measurements else None

    def verdict(self) -> str:
        """One sentence a person can act on."""
        best = self.best
        if best is None:
            return "No parallel run finished."
        if best.speedup < 1.1:
            if best.backend == "thread":
                return (f"Parallel was no faster ({best.speedup:.2f}×): threads cannot speed up pure-Python "
                        "CPU work, which holds the GIL; use processes (kind auto picks them for large batches).")
            return f"Parallel was no faster ({best.speedup:.2f}×): the items are too cheap to pay for the hand-off."
        how = {"thread": "threads", "process": "processes", "dask": "the Dask cluster"}.get(best.backend, best.backend)
        return (f"{how.capitalize()} ran {best.speedup:.1f}× faster than sequential with {best.workers} workers "
                f"({best.efficiency:.0%} of the ideal speed-up).")

    def to_rows(self) -> list[dict]:
        rows = [{"run": "sequential", "workers": 1, "chunk_size": None, "seconds": self.sequential_s,
                 "speedup": 1.0, "efficiency": 1.0, "backend": "sequential", "reason": ""}]
        for m in self.measurements:
            rows.append({"run": f"{m.workers} workers", "workers": m.workers, "chunk_size": m.chunk_used,
                         "seconds": m.seconds, "speedup": m.speedup, "efficiency": m.efficiency,
                         "backend": m.backend, "reason": m.reason})
        return rows


class BenchmarkRun:
    """Progress of a running benchmark, written by the worker and read by the page's fragment."""

    def __init__(self, total_steps: int) -> None:
        self._lock = threading.Lock()
        self.total_steps = total_steps
        self.step = 0
        self.stage = "starting"
        self.result: BenchmarkResult | None = None
        self.error: str | None = None
        self.finished = False
        self.cancelled = threading.Event()

    def advance(self, stage: str) -> None:
        with self._lock:
            self.step += 1
            self.stage = stage

    def snapshot(self) -> dict:
        with self._lock:
            return {"fraction": min(1.0, self.step / max(1, self.total_steps)), "stage": self.stage,
                    "finished": self.finished, "error": self.error}


def run_benchmark(manager: ThreadingManager, fn: Callable[[Any], Any], items: Sequence[Any], workload: str,
                  worker_counts: Sequence[int], chunk_sizes: Sequence[int | None] = (None,), kind: str = "auto",
                  pool: str | None = None, run: BenchmarkRun | None = None,
                  record: Callable[[dict], None] | None = None, owner: str | None = None) -> BenchmarkResult:
    """Time fn over items sequentially, then on the manager for each workers × chunk-size setting.

    `record` receives one row per measurement (e.g. the store's record_run, for Analytics).
    `owner`: whose share the parallel runs count against (every job has an owner).
    """
    run = run or BenchmarkRun(1 + len(worker_counts) * len(chunk_sizes))
    try:
        run.stage = "sequential"
        started = time.perf_counter()
        for item in items:
            fn(item)
        sequential = time.perf_counter() - started
        run.advance("sequential done")
        result = BenchmarkResult(workload, len(items), sequential)
        for workers in worker_counts:
            for chunk in chunk_sizes:
                if run.cancelled.is_set():
                    break
                run.stage = f"{workers} workers, chunk {chunk or 'auto'}"
                started = time.perf_counter()
                job = manager.map(fn, items, max_workers=workers, chunk_size=chunk, kind=kind, pool=pool,
                                  name=f"benchmark:{workload}", owner=owner)
                job.result()
                seconds = time.perf_counter() - started
                progress = job.progress()
                settings = manager.pool_settings(progress.pool)  # threads honour max_workers up to the total
                ceiling = settings["workers"] if settings["backend"] != "thread" else manager.config.max_total_workers
                effective = min(workers, ceiling)
                speedup = sequential / seconds if seconds > 0 else 0.0
                result.measurements.append(Measurement(effective, chunk, seconds, speedup, speedup / effective,
                                                       progress.backend, progress.backend_reason,
                                                       progress.chunk_size))
                run.advance(run.stage)
        if record is not None:
            for row in result.to_rows():
                record({"workload": workload, "backend": row["backend"], "workers": row["workers"],
                        "chunk_size": row["chunk_size"] or 0, "items": len(items), "seconds": row["seconds"],
                        "source": "benchmark", "created_at": time.time()})
        run.result = result
        return result
    except Exception as exc:  # noqa: BLE001 - reported on the page
        run.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        run.finished = True
