"""Server time per rerun, for the browser benchmark: one JSON line per script run or fragment run.

Off unless SPINDLE_RERUN_LOG names a file (config.settings: `rerun_log`). Then app.py times every full script
run and the job progress fragment (widgets.job_progress) every fragment run of its own, and each appends
{"at", "page", "kind", "ms", "job"} to the file: "job" is the state of the page's job as that run showed it
(None: no job on the page), and "gc_ms" the time the process spent collecting garbage meanwhile (a collection in
any thread stops this one too). Visitors see none of it. A fragment's first run happens inside the full run and
counts there. Plain Python, no streamlit: benchmarks read the file with `read_log` and `summarise`.
"""
from __future__ import annotations

import contextlib
import gc
import json
import logging
import statistics
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

RunKind = Literal["full", "fragment"]
RUNNING_STATES = ("pending", "running")

log = logging.getLogger("spindle.reruns")


@dataclass
class RunRecord:
    """What one timed run showed: which page, and its job's state."""

    page: str
    kind: RunKind
    job: str | None = None


_current = threading.local()  # per script thread: the RunRecord of the run being timed (None between runs)
_write_lock = threading.Lock()  # guards appends to the log file: every session's script thread writes to it


@dataclass
class GcClock:
    """Time this process spent collecting garbage, from gc.callbacks (installed at the first timed run)."""

    total_s: float = 0.0
    started: float = 0.0  # perf_counter() when the running collection started; 0.0 between collections
    installed: bool = False


_gc_lock = threading.Lock()  # guards _gc: collections start and stop in any thread
_gc = GcClock()


def _on_gc(phase: str, _info: dict) -> None:
    with _gc_lock:
        if phase == "start":
            _gc.started = time.perf_counter()
        elif _gc.started:
            _gc.total_s += time.perf_counter() - _gc.started
            _gc.started = 0.0


def _gc_seconds() -> float:
    """Seconds of garbage collection in this process so far (counted from the first timed run)."""
    with _gc_lock:
        if not _gc.installed:
            gc.callbacks.append(_on_gc)
            _gc.installed = True
        return _gc.total_s


@contextlib.contextmanager
def timed(path: str | Path | None, page: str, kind: RunKind) -> Iterator[RunRecord | None]:
    """Time the body as one run and append its line to `path`; without a path, or inside a timed run, nothing.

    Yields the run's record (the caller may set its page once it is known), or None when this run is not timed.
    The line is written whatever way the run ends: st.rerun and st.stop end runs by raising.
    """
    if not path or getattr(_current, "record", None) is not None:
        yield None
        return
    record = _current.record = RunRecord(page, kind)
    gc_before = _gc_seconds()
    start = time.perf_counter()
    try:
        yield record
    finally:
        elapsed_ms = (time.perf_counter() - start) * 1000
        _current.record = None
        append(Path(path), {"at": round(time.time(), 3), "page": record.page, "kind": record.kind,
                            "ms": round(elapsed_ms, 2), "job": record.job,
                            "gc_ms": round((_gc_seconds() - gc_before) * 1000, 2)})


def note_job_state(state: str | None) -> None:
    """The page's job state as the run being timed shows it (nothing when no run is timed)."""
    record = getattr(_current, "record", None)
    if record is not None:
        record.job = state


def current_page() -> str | None:
    """The page of the run being timed on this thread (a fragment defined in it keeps the name), else None."""
    record = getattr(_current, "record", None)
    return None if record is None else record.page


def append(path: Path, line: dict) -> None:
    """One JSON line; a log that cannot be written is a warning in the server log, never a page error."""
    text = json.dumps(line, separators=(",", ":")) + "\n"
    try:
        with _write_lock, path.open("a", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        log.warning("cannot append to the rerun log %s: %s", path, exc)


def read_log(path: str | Path, skip_lines: int = 0) -> list[dict]:
    """The lines of a rerun log from line `skip_lines` on (a missing file has none; a torn last line is left)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    out = []
    for text in lines[skip_lines:]:
        try:
            out.append(json.loads(text))
        except json.JSONDecodeError:
            continue  # a line still being written
    return out


@dataclass(frozen=True)
class RunSummary:
    count: int
    median_ms: float
    max_ms: float

    def __str__(self) -> str:
        if not self.count:
            return "none"
        return f"{self.count} runs, median {self.median_ms:.0f} ms, max {self.max_ms:.0f} ms"


def summarise(lines: Iterable[dict]) -> RunSummary:
    times = [float(line["ms"]) for line in lines]
    if not times:
        return RunSummary(0, 0.0, 0.0)
    return RunSummary(len(times), statistics.median(times), max(times))


def while_running(lines: Iterable[dict]) -> list[dict]:
    """The runs that showed the job still pending or running."""
    return [line for line in lines if line.get("job") in RUNNING_STATES]


def on_finished_page(lines: Iterable[dict]) -> list[dict]:
    """The runs that showed a finished job (completed, failed or cancelled), in order."""
    return [line for line in lines if line.get("job") is not None and line.get("job") not in RUNNING_STATES]
