"""Worker-pool sizes and timeouts for the threading manager, from the environment.

The variable names are the ones the product's owner already uses. Defaults are
derived from the machine: threads for I/O scale with cores, process pools match
cores, and nothing asks for more memory than the machine has.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import psutil

from config.settings import parse_bool, parse_int, raw_values

# The execution backend of a pool: threads of this process, local worker processes, or a Dask cluster.
BackendName = Literal["thread", "process", "dask"]

# Pool names every page may use. "cpu" runs CPU-bound Python in processes; "untrusted" decodes
# hostile files in processes whose address space is capped (MAX_MEMORY_PER_TASK_MB).
POOL_NAMES = ("default", "upload", "database", "analytics", "cpu", "untrusted")


@dataclass(frozen=True)
class PoolConfig:
    name: str
    workers: int  # the pool's base size; thread pools may grow past it while waiting work gains from it
    timeout: float | None  # seconds an item may take; None means no limit
    backend: BackendName = "thread"
    chunk_size: int | None = None  # None: sized from measured chunk times
    memory_limit_mb: int | None = None  # per worker process, for work (not counting the interpreter)

    @property
    def kind(self) -> BackendName:
        """Old name of `backend`, kept for callers written before the rename."""
        return self.backend


@dataclass(frozen=True)
class ThreadingConfig:
    pools: dict[str, PoolConfig] = field(default_factory=dict)
    batch_size: int = 100
    enable_task_monitoring: bool = True  # False: no per-item timings, percentiles or history are kept
    enable_performance_logging: bool = False  # True: one INFO line per finished job
    debug_threading: bool = False  # True: the dispatcher logs backend and concurrency decisions at INFO
    max_memory_per_task_mb: int = 512
    min_free_memory_mb: int = 256
    max_workers_per_user: int = 4
    max_total_workers: int = 32
    cpu_count: int = 1


def load_threading_config(env: Mapping[str, str] | None = None) -> ThreadingConfig:
    """Read pool settings; a bad value warns with the variable's name and the default is kept."""
    values = raw_values(env)
    cores = os.cpu_count() or 1
    total_mb = psutil.virtual_memory().total // (1024 * 1024)
    io_default = min(32, cores * 4)
    timeout = parse_int(values, "TASK_TIMEOUT", 300, minimum=1)
    upload_timeout = parse_int(values, "UPLOAD_TASK_TIMEOUT", 120, minimum=1)
    db_timeout = parse_int(values, "DB_TASK_TIMEOUT", 60, minimum=1)
    per_task_mb = parse_int(values, "MAX_MEMORY_PER_TASK_MB", 512, minimum=16)
    pools = {
        "default": PoolConfig("default", parse_int(values, "MAX_THREAD_WORKERS", io_default, 1, 256), timeout),
        "upload": PoolConfig("upload", parse_int(values, "FILE_UPLOAD_WORKERS", min(8, cores * 2), 1, 64),
                             upload_timeout),
        "database": PoolConfig("database", parse_int(values, "DATABASE_WORKERS", min(8, cores * 2), 1, 64),
                               db_timeout),
        "analytics": PoolConfig("analytics", parse_int(values, "ANALYTICS_WORKERS", max(2, cores), 1, 64), timeout),
        "cpu": PoolConfig("cpu", parse_int(values, "CPU_PROCESS_WORKERS", cores, 1, 64), timeout, backend="process"),
        "untrusted": PoolConfig("untrusted", parse_int(values, "UNTRUSTED_PROCESS_WORKERS", cores, 1, 64), timeout,
                                backend="process", memory_limit_mb=per_task_mb),
    }
    return ThreadingConfig(
        pools=pools,
        batch_size=parse_int(values, "BATCH_SIZE", 100, minimum=1),
        enable_task_monitoring=parse_bool(values, "ENABLE_TASK_MONITORING", True),
        enable_performance_logging=parse_bool(values, "ENABLE_PERFORMANCE_LOGGING", False),
        debug_threading=parse_bool(values, "DEBUG_THREADING", False),
        max_memory_per_task_mb=per_task_mb,
        min_free_memory_mb=parse_int(values, "MIN_FREE_MEMORY_MB", max(256, total_mb // 20), minimum=0),
        max_workers_per_user=parse_int(values, "MAX_WORKERS_PER_USER", 4, minimum=1),
        max_total_workers=parse_int(values, "MAX_TOTAL_WORKERS", 32, minimum=1),
        cpu_count=cores,
    )
