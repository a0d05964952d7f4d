"""Pure decisions of the threading manager: which backend a job runs on, and how big its chunks are.

No state and no clock here: the manager measures, these functions decide, and the tests call
them with numbers (joblib's AutoBatchingMixin is the model for sizing batches from measured time).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

# Seconds of work a chunk should hold: enough to pay for its hand-off. A thread hand-off costs
# tens of µs, a process one ~1 ms of pickling, a Dask task ~15 ms of scheduling.
TARGET_CHUNK_S = {"thread": 0.02, "process": 0.1, "dask": 0.4}
MAX_CHUNK = 10_000  # items; even free work is handed out in pieces so progress and cancel stay live
FIRST_RUN_CHUNK = 8  # items per chunk before any item was timed
PROBE_CHUNK_WITHOUT_LEN = 256  # probe chunk of an iterator without len (a time budget ends it early)
CHUNKS_PER_SLOT = 2  # several chunks per worker balance the load (items are not all equally long)
MIN_CHUNK_SHARE = 0.1  # ...but no chunk holds less than this share of TARGET_CHUNK_S

CPU_BOUND_SHARE = 0.5  # a probe keeping half a core busy (or the GIL half held) is CPU-bound
UNSURE_CPU_SHARE = 0.15  # between this and CPU_BOUND_SHARE a probe is inconclusive
UNSURE_GIL_SHARE = 0.15  # a GIL held less than this is free: the work waits, whatever CPU says
RELEASES_GIL_CORES = 1.5  # more cores than this busy on threads: the code runs outside the GIL
MIN_PROCESS_WORK_S = 0.25  # CPU seconds left below which starting processes does not pay
PROBE_MAX_ROUNDS = 3  # inconclusive probes run again, up to this many rounds in all

BACKEND_WORDS = {"thread": "threads", "process": "local processes", "dask": "a Dask cluster"}

ChunkPhase = Literal["probe", "run"]


def chunk_size(phase: ChunkPhase, backend: str, per_item_s: float | None, waiting: int | None, slots: int,
               explicit: int | None) -> int:
    """Items in the next chunk.

    phase: a probe chunk is cut so every slot gets one (a time budget stops it early);
    backend: "thread", "process" or "dask" (sets the target seconds per chunk);
    per_item_s: measured seconds per item, None before any was timed;
    waiting: items not yet handed out (None for an iterator without len);
    slots: chunks that may run at once; explicit: a chunk size the caller asked for.
    """
    slots = max(1, slots)
    if phase == "probe":
        size = max(1, min(MAX_CHUNK, math.ceil(waiting / slots))) if waiting else PROBE_CHUNK_WITHOUT_LEN
        return min(size, explicit) if explicit else size  # an explicit chunk size holds for the probe too
    if explicit:
        return explicit
    if per_item_s is None:
        return FIRST_RUN_CHUNK
    target = TARGET_CHUNK_S.get(backend, TARGET_CHUNK_S["thread"])
    per_item = max(per_item_s, 1e-7)
    size = max(1, min(MAX_CHUNK, int(target / per_item)))
    if waiting:
        floor = max(1, int(MIN_CHUNK_SHARE * target / per_item))
        size = min(size, max(floor, math.ceil(waiting / (slots * CHUNKS_PER_SLOT))))
    return max(1, size)


@dataclass(frozen=True)
class BackendChoice:
    backend: Literal["thread", "process"]
    reason: str
    probe_again: bool = False  # inconclusive: run another probe round before choosing


def choose_backend(*, cpu_share: float, gil_held: float | None, cpu_left_s: float, cores: int, picklable: bool,
                   rounds: int, more_items: bool) -> BackendChoice:
    """Stay on threads, or move CPU-bound Python to processes, from what the probe measured.

    cpu_share: CPU seconds per wall second the probe's threads used together (cores busy);
    gil_held: share of the probe the GIL was held (None where it cannot be sampled);
    cpu_left_s: estimated CPU seconds of the items still waiting (inf without len);
    rounds: probe rounds run so far, this one included; more_items: items are ready for another round.
    """
    # On a busy machine CPU-bound Python gets less CPU than wall time and would pass for I/O;
    # the GIL sampler sees it hold the GIL all the same (sleeping I/O leaves the GIL free).
    cpu_bound = cpu_share >= CPU_BOUND_SHARE or (gil_held is not None and gil_held >= CPU_BOUND_SHARE)
    if (not cpu_bound and cpu_share >= UNSURE_CPU_SHARE and (gil_held is None or gil_held >= UNSURE_GIL_SHARE)
            and rounds < PROBE_MAX_ROUNDS and cpu_left_s >= MIN_PROCESS_WORK_S and cores >= 2 and more_items):
        return BackendChoice("thread", "probing", probe_again=True)
    if not cpu_bound:
        gil_text = f", GIL held {gil_held:.0%}" if gil_held is not None else ""
        return BackendChoice("thread", f"I/O-bound: CPU busy {cpu_share:.0%} of the time in the first chunks"
                                       f"{gil_text}, so threads")
    if cores < 2:
        return BackendChoice("thread", "one CPU core: processes cannot help, so threads")
    if cpu_share >= RELEASES_GIL_CORES:
        return BackendChoice("thread", f"releases the GIL: {cpu_share:.1f} cores busy on threads, so threads")
    if cpu_left_s < MIN_PROCESS_WORK_S:
        return BackendChoice("thread", "too little work left to pay for processes, so threads")
    if not picklable:
        return BackendChoice("thread", "CPU-bound, but the function cannot be sent to a process (lambda or closure)")
    busy = f"{cpu_share:.1f} cores busy on threads" + (
        f", GIL held {gil_held:.0%} of the time on a busy machine"
        if cpu_share < CPU_BOUND_SHARE and gil_held is not None else "")
    return BackendChoice("process", f"CPU-bound Python holds the GIL ({busy}), so processes")
