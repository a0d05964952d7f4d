"""The engine's pure parts as functions: chunk sizing, backend choice, the concurrency controller, p95."""
from __future__ import annotations

import random
from collections import Counter

import pytest

from utils import sizing
from utils.concurrency import HOLD_WINDOWS, ConcurrencyController
from utils.metrics import PoolMetrics, bucket_of, percentile

# ---------------------------------------------------------------------------------- chunk sizing


def test_probe_chunks_give_every_slot_one():
    assert sizing.chunk_size("probe", "thread", None, waiting=100, slots=4, explicit=None) == 25
    assert sizing.chunk_size("probe", "thread", None, waiting=None, slots=4, explicit=None) == \
        sizing.PROBE_CHUNK_WITHOUT_LEN
    assert sizing.chunk_size("probe", "thread", None, waiting=100, slots=4, explicit=5) == 5


def test_run_chunks_hold_the_target_time_and_balance_the_tail():
    # 1 ms items on threads: 20 ms of work per chunk, while plenty is waiting.
    assert sizing.chunk_size("run", "thread", 0.001, waiting=100_000, slots=4, explicit=None) == 20
    # Processes pay more per hand-off: bigger chunks.
    assert sizing.chunk_size("run", "process", 0.001, waiting=100_000, slots=4, explicit=None) == 100
    # 20 ms waits: one item a chunk, so 32 threads finish together like a plain executor.
    assert sizing.chunk_size("run", "thread", 0.02, waiting=368, slots=32, explicit=None) == 1
    # Near the end, chunks shrink so every slot gets work (never below a tenth of the target).
    assert sizing.chunk_size("run", "process", 0.0001, waiting=800, slots=4, explicit=None) == 100
    assert sizing.chunk_size("run", "process", 0.0001, waiting=8000, slots=4, explicit=None) == 1000
    # Free work is still cut into pieces.
    assert sizing.chunk_size("run", "thread", 0.0, waiting=None, slots=1, explicit=None) == sizing.MAX_CHUNK
    assert sizing.chunk_size("run", "thread", None, waiting=50, slots=2, explicit=None) == sizing.FIRST_RUN_CHUNK
    assert sizing.chunk_size("run", "dask", 0.5, waiting=50, slots=2, explicit=7) == 7


# ---------------------------------------------------------------------------------- backend choice


def choose(**overrides):
    values = dict(cpu_share=0.02, gil_held=None, cpu_left_s=10.0, cores=2, picklable=True, rounds=1,
                  more_items=True)
    values.update(overrides)
    return sizing.choose_backend(**values)


def test_backend_choice():
    assert choose(cpu_share=0.75).backend == "process"
    assert choose(cpu_share=0.05).backend == "thread"
    starved = choose(cpu_share=0.3, gil_held=0.8)  # CPU-bound Python on a busy machine: it held the GIL
    assert starved.backend == "process" and "busy machine" in starved.reason
    sleeping = choose(cpu_share=0.05, gil_held=0.02)
    assert sleeping.backend == "thread" and "I/O-bound" in sleeping.reason
    unsure = choose(cpu_share=0.3, gil_held=0.3)
    assert unsure.probe_again
    settled = choose(cpu_share=0.3, gil_held=0.3, rounds=sizing.PROBE_MAX_ROUNDS)
    assert not settled.probe_again and "I/O-bound" in settled.reason
    assert "releases the GIL" in choose(cpu_share=1.75, gil_held=0.1).reason
    assert "one CPU core" in choose(cpu_share=0.9, cores=1).reason
    assert "too little work" in choose(cpu_share=0.9, cpu_left_s=0.01).reason
    assert "lambda" in choose(cpu_share=0.9, picklable=False).reason


# ---------------------------------------------------------------------------------- the concurrency controller


def run_windows(controller: ConcurrencyController, rate_at, cores_per_thread: float, windows: int,
                saturated: bool = True, memory_ok: bool = True, gil: float | None = None) -> list[int]:
    """Feed the controller windows whose throughput is rate_at(level); the levels it chose."""
    now, levels = 0.0, []
    for _ in range(windows):
        level = controller.level
        seconds = max(0.05, 2 * level / rate_at(level))
        items = int(rate_at(level) * seconds)
        for _ in range(items):
            now += seconds / items
            controller.record(1, cores_per_thread * level * seconds / items, level * seconds / items, now)
        controller.step(now, saturated, memory_ok, gil)
        levels.append(controller.level)
    return levels


def waiting_rate(level: int) -> float:
    return level / 0.02  # 20 ms waits: throughput grows with threads


def test_waiting_work_grows_up_to_the_ceiling():
    controller = ConcurrencyController(base=4, ceiling=32, cores=2)
    levels = run_windows(controller, waiting_rate, cores_per_thread=0.002, windows=8)
    assert levels[-1] == 32 and max(levels) == 32
    assert levels == sorted(levels)


def test_growth_that_does_not_pay_is_undone():
    controller = ConcurrencyController(base=4, ceiling=64, cores=2)
    capped = lambda level: min(level, 12) / 0.02  # noqa: E731 - a service that takes 12 calls at once
    levels = run_windows(controller, capped, cores_per_thread=0.002, windows=12)
    assert max(levels) > 12
    assert levels[-1] <= 16 and "no gain" in controller.reason
    assert controller.hold > 0 or levels[-1] <= 16


def test_cpu_bound_work_does_not_grow():
    controller = ConcurrencyController(base=4, ceiling=32, cores=2)
    levels = run_windows(controller, lambda level: 200.0, cores_per_thread=0.25, windows=6)
    assert set(levels) == {4}
    sampled = ConcurrencyController(base=4, ceiling=32, cores=2)
    # A machine short of CPU hides CPU-bound work's CPU time; the GIL sample still tells.
    assert set(run_windows(sampled, lambda level: 200.0, cores_per_thread=0.01, windows=6, gil=0.9)) == {4}


def test_no_growth_without_queued_work_and_halving_on_low_memory():
    controller = ConcurrencyController(base=8, ceiling=32, cores=2)
    assert set(run_windows(controller, waiting_rate, 0.002, windows=4, saturated=False)) == {8}
    assert run_windows(controller, waiting_rate, 0.002, windows=2, memory_ok=False)[-1] <= 4
    assert "memory" in controller.reason


def test_hold_after_backing_off_then_probe_again():
    controller = ConcurrencyController(base=4, ceiling=64, cores=2)
    flat = lambda level: 400.0  # noqa: E731 - more threads never help
    levels = run_windows(controller, flat, cores_per_thread=0.002, windows=HOLD_WINDOWS + 6)
    assert levels.count(4) >= HOLD_WINDOWS  # mostly at the base size, with rare probes above it
    assert max(levels) > 4


# ---------------------------------------------------------------------------------- p95


@pytest.mark.parametrize("make", [
    lambda rng: rng.lognormvariate(-4.6, 0.5),  # ~10 ms, long-tailed
    lambda rng: rng.uniform(0.009, 0.011),  # 10 ms ± 10 %
    lambda rng: rng.expovariate(1 / 0.003),
])
def test_p95_within_two_percent_of_the_exact_value(make):
    rng = random.Random(7)
    values = [make(rng) for _ in range(20_000)]
    metrics = PoolMetrics()
    for start in range(0, len(values), 50):
        metrics.record_items(values[start:start + 50], failed=0, retried=0)
    exact = sorted(values)[int(0.95 * len(values)) - 1]
    assert metrics.p95() == pytest.approx(exact, rel=0.02)
    assert metrics.snapshot()["p95_task_s"] == metrics.p95()


def test_p95_of_a_constant_10ms_reads_10ms():
    metrics = PoolMetrics()
    metrics.record_items([0.010] * 100, failed=0, retried=0)
    assert metrics.p95() == pytest.approx(0.010, rel=0.02)


def test_percentile_buckets_and_monitoring_off():
    counts = Counter({bucket_of(0.001): 95, bucket_of(1.0): 5})
    assert percentile(counts, 0.95) == pytest.approx(0.001, rel=0.02)
    assert percentile(Counter(), 0.95) == 0.0
    quiet = PoolMetrics(timings=False)
    quiet.record_items([0.5, 0.5], failed=1, retried=0)
    snapshot = quiet.snapshot()
    assert snapshot["completed"] == 1 and snapshot["failed"] == 1 and snapshot["p95_task_s"] == 0.0


# ---------------------------------------------------------------------------------- backends


def test_local_processes_and_threads_fit_the_backend_protocols():
    from utils.backends import Backend, ChunkBackend
    from utils.process_workers import ProcessWorkers
    from utils.worker_threads import WorkerThreads

    processes = ProcessWorkers("check", 1)  # starts nothing until the first chunk
    assert isinstance(processes, ChunkBackend)
    threads = WorkerThreads("check", 1)
    try:
        assert isinstance(threads, Backend) and not isinstance(threads, ChunkBackend)
    finally:
        threads.shutdown(timeout=5)
