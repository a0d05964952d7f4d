"""Adaptive concurrency for a thread pool: slow start, then hill climbing on measured throughput.

A thread pool starts at its configured base size. Each measurement window (long enough for
every slot to finish an item) yields a throughput and the CPU the pool's threads used per
wall second. While the work waits (little CPU: network, disk, sleeps) and items are queued
behind the limit, the controller tries more threads; it keeps a step only if throughput rose
by MIN_GAIN, otherwise it steps back and holds for a while before probing again (the hill
climbing of .NET's thread pool, with TCP's slow start to get off the ground quickly). Work
that keeps a core busy (CPU-bound Python) never grows threads, and low memory halves them.

The first step from a waiting measurement is sized with the classic estimate
threads = cores × (1 + wait/compute) (Goetz, Java Concurrency in Practice), at most
MAX_STEP_FACTOR times the current level; later steps double (slow start) or add a quarter.
Pure arithmetic on numbers the manager passes in: no clock, no lock (the manager's lock guards it).
"""
from __future__ import annotations

from dataclasses import dataclass, field

MIN_GAIN = 0.10  # a step up must raise throughput by this share to be kept
WAITING_MAX_CORES = 0.3  # the pool's threads together using less CPU than this are waiting, not computing
MAX_STEP_FACTOR = 4  # one step multiplies the level by at most this
WINDOW_MIN_S = 0.01  # a measurement window lasts at least this long...
WINDOW_ITEMS_PER_SLOT = 1  # ...and sees at least this many finished items per slot...
WINDOW_MIN_ITEMS = 8  # ...and never fewer than this many
IDLE_RESET_S = 0.5  # a gap this long without finished items starts a fresh window
HOLD_WINDOWS = 25  # after stepping back, windows to wait before probing upwards again
LOW_MEMORY_FACTOR = 0.5  # memory low: the level is multiplied by this
GIL_BUSY = 0.5  # the GIL held this share of the time by the pool's threads: CPU-bound Python
GIL_FREE = 0.25  # the GIL held less than this: the threads wait (whatever a busy machine does to CPU time)


@dataclass
class Window:
    """What finished since the window opened."""

    start: float
    items: int = 0
    cpu_s: float = 0.0  # thread CPU seconds of the chunks that finished
    busy_s: float = 0.0  # wall seconds those chunks ran
    warm_up: bool = False  # measured, never acted on


@dataclass
class ConcurrencyController:
    """The current concurrency of one thread pool and why it last changed."""

    base: int  # the pool's configured size: the level it starts from and returns to
    ceiling: int  # MAX_TOTAL_WORKERS
    cores: int = 1
    level: int = 0
    reason: str = "configured size"
    changes: int = 0
    window: Window | None = None
    last_finish: float = 0.0
    previous: tuple[int, float] | None = None  # (level, items/s) before the last step up
    hold: int = 0
    slow_start: bool = True  # doubling until the first step that did not pay
    gil_verdict: str | None = None  # "waiting" or "computing", from a GIL sample since the last pause
    history: list[tuple[int, str]] = field(default_factory=list)  # the last few (level, reason)

    def __post_init__(self) -> None:
        self.base = max(1, self.base)
        self.ceiling = max(self.base, self.ceiling)
        self.level = self.level or self.base

    def set_base(self, base: int) -> None:
        """The pool was resized by hand: start over from the new size."""
        self.base = max(1, base)
        self.ceiling = max(self.base, self.ceiling)
        self.previous, self.hold, self.slow_start, self.window = None, 0, True, None
        self._set(self.base, "resized by hand")

    def record(self, items: int, cpu_s: float, busy_s: float, now: float) -> None:
        """A chunk of `items` finished, having used `cpu_s` CPU over `busy_s` wall seconds."""
        if self.window is None or now - self.last_finish > IDLE_RESET_S:
            # A fresh start (new threads, cold caches) is not what the work costs: the first window
            # after a pause only warms up and is never acted on.
            self.window = Window(start=now - busy_s, warm_up=True)
            self.gil_verdict = None
        self.last_finish = now
        window = self.window
        window.items += items
        window.cpu_s += cpu_s
        window.busy_s += busy_s

    def ready(self, now: float) -> bool:
        window = self.window
        return (window is not None and now - window.start >= WINDOW_MIN_S
                and window.items >= max(WINDOW_MIN_ITEMS, self.level * WINDOW_ITEMS_PER_SLOT))

    def wants_gil_sample(self) -> bool:
        """True while the warm-up window runs without a verdict: a GIL sample now settles the kind of work."""
        return self.window is not None and self.window.warm_up and self.gil_verdict is None

    def step(self, now: float, saturated: bool, memory_ok: bool, gil_held: float | None = None,
             gil_sampled: bool = False) -> bool:
        """Close the window and maybe change the level; True when it changed.

        saturated: items were waiting for a slot of this pool (more threads could have run them);
        gil_held: share of the time the GIL was held (utils.chunk_runner.GilSampler), None if unknown;
        gil_sampled: a GIL sampler runs for this pool (no verdict yet means: do not grow yet).
        """
        window = self.window
        if window is None:
            return False
        self.window = Window(start=now)
        if gil_held is not None:
            self.gil_verdict = "computing" if gil_held >= GIL_BUSY else ("waiting" if gil_held < GIL_FREE else None)
        elapsed = max(now - window.start, 1e-6)
        rate = window.items / elapsed
        cores_busy = window.cpu_s / elapsed
        if window.warm_up:
            # Its CPU figures are start-up noise; only a GIL sample that says "waiting" is acted on.
            if self.gil_verdict == "waiting" and saturated and memory_ok and self.level < self.ceiling:
                return self._grow(rate, f"waiting work (GIL held {gil_held or 0.0:.0%})", window)
            return False
        if not memory_ok:
            if self.level > 1:
                self.previous, self.hold = None, HOLD_WINDOWS
                return self._set(max(1, int(self.level * LOW_MEMORY_FACTOR)), "memory low: fewer threads")
            return False
        # CPU per wall second of a running chunk, times the chunks running: the cores the work keeps busy
        # while it runs (idle gaps between chunks do not count). CPU-bound Python shows ~1 (the GIL) or
        # its share of a busy machine; waiting work shows a small fraction.
        cores_running = window.cpu_s / max(window.busy_s, 1e-9) * self.level
        computing = cores_busy >= WAITING_MAX_CORES or cores_running >= WAITING_MAX_CORES
        if self.gil_verdict is not None:
            computing = self.gil_verdict == "computing"  # the GIL tells, even on a machine short of CPU
        elif gil_sampled:
            saturated = False  # inconclusive so far: no step up until the GIL sample settles it
        if computing:
            self.previous = None
            if self.level > self.base:
                return self._set(self.base, f"busy computing ({max(cores_busy, cores_running):.1f} cores): "
                                            f"more threads do not help")
            return False
        if self.previous is not None:
            before_level, before_rate = self.previous
            self.previous = None
            if rate < before_rate * (1 + MIN_GAIN):
                self.slow_start, self.hold = False, HOLD_WINDOWS
                return self._set(before_level, f"no gain from {before_level} to {self.level} threads "
                                               f"({before_rate:.0f} → {rate:.0f} items/s)")
            if saturated and self.level < self.ceiling:
                return self._grow(rate, f"throughput rose {before_rate:.0f} → {rate:.0f} items/s")
            return False
        if self.hold > 0:
            self.hold -= 1
            return False
        if saturated and self.level < self.ceiling:
            return self._grow(rate, f"waiting work ({cores_busy:.2f} cores busy)", window)
        return False

    def _grow(self, rate: float, why: str, window: Window | None = None) -> bool:
        level = self.level
        if window is not None and window.cpu_s > 0 and self.slow_start:
            wait_per_compute = max(0.0, window.busy_s - window.cpu_s) / window.cpu_s
            estimate = self.cores * (1 + wait_per_compute)
            factor = min(MAX_STEP_FACTOR, max(2.0, estimate / level))
            new = int(level * factor)
        elif self.slow_start:
            new = level * 2
        else:
            new = level + max(1, level // 4)
        new = min(self.ceiling, max(level + 1, new))
        self.previous = (level, rate)
        return self._set(new, f"{why}: trying {new} threads")

    def _set(self, level: int, reason: str) -> bool:
        changed = level != self.level
        self.level, self.reason = level, reason
        if changed:
            self.changes += 1
            self.history = (self.history + [(level, reason)])[-10:]
        return changed
