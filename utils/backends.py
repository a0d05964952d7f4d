"""The backends a pool's chunks run on, as one protocol.

- threads of this process (`utils.worker_threads.WorkerThreads`): the manager hands a thread a
  closure that runs the chunk and reports back; a stuck thread is abandoned and replaced;
- local worker processes (`utils.process_workers.ProcessWorkers`) and a Dask cluster
  (`utils.dask_backend.DaskWorkers`): a chunk is pickled with its function, `submit` returns a
  Future, and a dead worker surfaces as `BrokenProcessPool` for the manager to isolate the item.

`ThreadingManager.set_backend(pool, backend)` swaps a pool's chunk backend (the Dask module uses
it); nothing outside the manager touches its pools directly.
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Literal, Protocol, runtime_checkable

BackendName = Literal["thread", "process", "dask"]


@runtime_checkable
class Backend(Protocol):
    """What every backend offers: a size, a per-worker initializer, and a way to stop."""

    def resize(self, workers: int) -> None: ...

    def set_initializer(self, initializer: Callable[[], None] | None) -> None: ...


@runtime_checkable
class ChunkBackend(Backend, Protocol):
    """A backend that runs pickled chunks out of this interpreter (local processes, a Dask cluster)."""

    name: str
    workers: int
    generation: int  # bumped whenever the workers are replaced; a break is handled once per generation

    def submit(self, fn: Callable[..., Any], *args: Any) -> tuple[Future, int]:
        """Run fn(*args) on a worker: the future, and the generation that took it."""
        ...

    def warm(self) -> None: ...

    def rebuild(self, generation: int, kill: bool) -> bool:
        """Replace broken (or, with kill, hung) workers once per generation; True when this call did."""
        ...

    def shutdown(self, wait: bool, kill: bool) -> None: ...
