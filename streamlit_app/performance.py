"""Benchmark workloads and the Performance page's figures, as plain functions.

Three workloads show the three kinds of work: waiting (threads help), pure-Python
CPU work that holds the GIL (only processes help), and native code that releases
the GIL (threads help).
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots


def simulated_io_call(item: int) -> int:
    """A 20 ms wait, like a call to a remote API."""
    time.sleep(0.02)
    return item


def validate_phone_number(number: str) -> bool:
    """Pure-Python CPU work: phonenumbers holds the GIL."""
    import phonenumbers

    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, "US"))
    except phonenumbers.NumberParseException:
        return False


_REFERENCE_NAMES: list[str] | None = None


def fuzzy_match_block(names: tuple[str, ...]) -> int:
    """GIL-free native work: rapidfuzz scores a block of names against a reference list."""
    from rapidfuzz import fuzz, process

    reference = _reference_names()
    scores = process.cdist(list(names), reference, scorer=fuzz.ratio, score_cutoff=85, workers=1)
    return int((scores > 0).sum())


def _reference_names() -> list[str]:
    global _REFERENCE_NAMES  # immutable after first build; rebuilt identically in each process
    if _REFERENCE_NAMES is None:
        _REFERENCE_NAMES = _names(3000, seed=7)
    return _REFERENCE_NAMES


def _names(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    first = ["Ana", "Ben", "Chloe", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jon", "Kara", "Liam"]
    last = ["Smith", "Nguyen", "Garcia", "Okafor", "Muller", "Rossi", "Kowalski", "Silva", "Chen", "Haddad"]
    return [f"{rng.choice(first)} {rng.choice(last)}{rng.randint(1, 999)}" for _ in range(count)]


@dataclass(frozen=True)
class Workload:
    label: str
    fn: Callable[[Any], Any]
    default_size: int
    max_size: int
    make_items: Callable[[int], list]
    pool: str


def _phone_items(size: int) -> list[str]:
    rng = random.Random(11)
    return [f"+1 {rng.choice(['212', '415', '617', '999'])} {rng.randint(200, 999)} {rng.randint(0, 9999):04d}"
            for _ in range(size)]


def _name_blocks(size: int) -> list[tuple[str, ...]]:
    names = _names(size * 50, seed=3)
    return [tuple(names[i:i + 50]) for i in range(0, len(names), 50)]


WORKLOADS: dict[str, Workload] = {
    "io": Workload("Simulated I/O calls (20 ms each)", simulated_io_call, 200, 2000, lambda n: list(range(n)),
                   "default"),
    "phones": Workload("Phone validation (pure Python, holds the GIL)", validate_phone_number, 20000, 200000,
                       _phone_items, "default"),
    "fuzzy": Workload("Fuzzy matching (rapidfuzz, releases the GIL)", fuzzy_match_block, 40, 400, _name_blocks,
                      "default"),
}


def history_figure(history: list[dict]) -> go.Figure:
    """Throughput and busy workers over the last minutes."""
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    times = [time.strftime("%H:%M:%S", time.localtime(h["t"])) for h in history]
    figure.add_trace(go.Scatter(x=times, y=[h["items_per_s"] for h in history], name="items/s", mode="lines"))
    figure.add_trace(go.Scatter(x=times, y=[h["busy_workers"] for h in history], name="busy workers",
                                mode="lines", line={"dash": "dot"}), secondary_y=True)
    figure.update_layout(height=300, margin={"l": 10, "r": 10, "t": 30, "b": 10}, title="Throughput",
                         legend={"orientation": "h"})
    figure.update_yaxes(title_text="items/s", secondary_y=False)
    figure.update_yaxes(title_text="busy workers", secondary_y=True)
    return figure


def benchmark_figures(rows: list[dict]) -> tuple[go.Figure, go.Figure]:
    """Times per run, and speed-up against the ideal line."""
    times = go.Figure(go.Bar(x=[r["run"] for r in rows], y=[r["seconds"] for r in rows],
                             text=[f"{r['seconds']:.2f}s" for r in rows], textposition="auto"))
    times.update_layout(title="Time per run", yaxis_title="seconds", height=320,
                        margin={"l": 10, "r": 10, "t": 40, "b": 10})
    parallel = [r for r in rows if r["run"] != "sequential"]
    workers = [r["workers"] for r in parallel]
    speedup = go.Figure()
    speedup.add_trace(go.Scatter(x=workers, y=[r["speedup"] for r in parallel], mode="lines+markers",
                                 name="measured"))
    if workers:
        speedup.add_trace(go.Scatter(x=[1, max(workers)], y=[1, max(workers)], mode="lines", name="ideal",
                                     line={"dash": "dash"}))
    speedup.update_layout(title="Speed-up vs workers", xaxis_title="workers", yaxis_title="× faster",
                          height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return times, speedup
