"""What Spindle has processed, read from the store and turned into tables and charts.

Charts are built concurrently on the manager's analytics pool; the page caches them
by `data_version`, so they are redrawn only when the store changes.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from utils.item_errors import ItemError

PAGE_KINDS = ("validation", "audio", "image", "text")


@dataclass
class Activity:
    jobs: pd.DataFrame  # one row per job: kind, status, total, done, failed, created, day, seconds
    failures: pd.DataFrame  # kind, reason
    durations: pd.DataFrame  # kind, ms
    runs: pd.DataFrame  # workload, backend, workers, chunk_size, items, seconds, items_per_s, source
    validation: pd.DataFrame  # status counts of validated records

    @property
    def empty(self) -> bool:
        return self.jobs.empty and self.runs.empty


def data_version(store: Any, owner: str | None = None) -> tuple:
    """Changes whenever a job is added or moves on, or a run is recorded: the charts' cache key."""
    latest = store.list_jobs(owner=owner, limit=1)
    runs = store.runs(limit=1)
    head = latest[0] if latest else {}
    return (head.get("id"), head.get("status"), head.get("done"), runs[0].get("id") if runs else None)


def load_activity(store: Any, since: dt.date | None = None, kinds: Sequence[str] | None = None,
                  job_limit: int = 500, sample_per_job: int = 500, owner: str | None = None) -> Activity:
    """Jobs, failure reasons, item times and benchmark runs, filtered by date and page (and owner, if given)."""
    jobs = pd.DataFrame(store.list_jobs(owner=owner, limit=job_limit))
    if not jobs.empty:
        jobs = jobs[jobs["kind"].isin(kinds or PAGE_KINDS)]
        jobs["created"] = pd.to_datetime(jobs["created_at"], unit="s")
        if since is not None:
            jobs = jobs[jobs["created"].dt.date >= since]
        jobs["day"] = jobs["created"].dt.date
        jobs["seconds"] = (jobs["finished_at"].fillna(jobs["created_at"]) - jobs["started_at"].fillna(jobs["created_at"]))
    failures, durations, validation = [], [], []
    for job in (jobs.to_dict("records") if not jobs.empty else []):
        rows = store.item_rows(job["id"], limit=sample_per_job)
        for row in rows:
            if row["status"] == "failed":
                failures.append({"kind": job["kind"], "reason": _short_reason(row.get("error") or "")})
            if row.get("duration_ms") is not None:
                durations.append({"kind": job["kind"], "ms": row["duration_ms"]})
            result = row.get("result") or {}
            if job["kind"] == "validation" and isinstance(result, dict) and result.get("status"):
                validation.append({"status": result["status"]})
    runs = pd.DataFrame(store.runs())
    if not runs.empty:
        runs["items_per_s"] = runs["items"] / runs["seconds"].where(runs["seconds"] > 0)
    return Activity(jobs if not jobs.empty else pd.DataFrame(columns=["kind", "day", "total", "done", "failed"]),
                    pd.DataFrame(failures, columns=["kind", "reason"]), pd.DataFrame(durations, columns=["kind", "ms"]),
                    runs, pd.DataFrame(validation, columns=["status"]))


def _short_reason(error: str) -> str:
    """Group failures by their kind of reason, not by the file name inside the message."""
    kind, _, message = error.partition(": ")
    words = message.split(":")[-1].strip() if message else kind
    return f"{kind}: {words[:60]}" if message else kind


def _empty(title: str, note: str) -> go.Figure:
    figure = go.Figure()
    figure.add_annotation(text=note, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    figure.update_layout(title=title, height=300, xaxis={"visible": False}, yaxis={"visible": False})
    return figure


def items_per_day_figure(activity: Activity) -> go.Figure:
    if activity.jobs.empty:
        return _empty("Items per day", "No jobs yet")
    daily = activity.jobs.groupby(["day", "kind"], as_index=False)["total"].sum()
    return px.bar(daily, x="day", y="total", color="kind", title="Items per day by page", height=320)


def success_figure(activity: Activity) -> go.Figure:
    if activity.jobs.empty:
        return _empty("Success and failure", "No jobs yet")
    sums = activity.jobs.groupby("kind", as_index=False)[["done", "failed"]].sum()
    sums["succeeded"] = sums["done"] - sums["failed"]
    long = sums.melt(id_vars="kind", value_vars=["succeeded", "failed"], var_name="outcome", value_name="items")
    return px.bar(long, x="kind", y="items", color="outcome", title="Success and failure by page", height=320,
                  color_discrete_map={"succeeded": "#3b8f5a", "failed": "#c8553d"})


def failure_reasons_figure(activity: Activity) -> go.Figure:
    if activity.failures.empty:
        return _empty("Top failure reasons", "No failures recorded")
    top = activity.failures.value_counts(["reason"]).reset_index(name="items").head(10)
    return px.bar(top, x="items", y="reason", orientation="h", title="Top failure reasons", height=320)


def durations_figure(activity: Activity) -> go.Figure:
    if activity.durations.empty:
        return _empty("Processing time", "No item times yet")
    return px.box(activity.durations, x="kind", y="ms", points=False, log_y=True,
                  title="Processing time per item (ms)", height=320)


def throughput_figure(activity: Activity) -> go.Figure:
    if activity.runs.empty:
        return _empty("Throughput", "No jobs or benchmarks recorded yet")
    return px.scatter(activity.runs, x="workers", y="items_per_s", color="workload", symbol="backend",
                      size="items", hover_data=["chunk_size", "source"], log_y=True,
                      title="Throughput by worker count (jobs and benchmarks)", height=320)


def validation_figure(activity: Activity) -> go.Figure:
    if activity.validation.empty:
        return _empty("Validation", "No validated records yet")
    counts = activity.validation.value_counts("status").reset_index(name="records")
    return px.pie(counts, names="status", values="records", title="Validated records by status", height=320)


FIGURES: dict[str, Callable[[Activity], go.Figure]] = {
    "items_per_day": items_per_day_figure,
    "success": success_figure,
    "failures": failure_reasons_figure,
    "durations": durations_figure,
    "throughput": throughput_figure,
    "validation": validation_figure,
}


def build_figures(activity: Activity, manager: Any, owner: str | None = None) -> dict[str, go.Figure]:
    """Every chart at once on the analytics pool (on `owner`'s share); a chart that fails shows why instead."""
    names = list(FIGURES)
    built = manager.parallel_map(lambda name: FIGURES[name](activity), names, kind="thread", pool="analytics",
                                 chunk_size=1, owner=owner)
    return {name: (figure if not isinstance(figure, ItemError) else _empty(name, f"Chart failed: {figure.message}"))
            for name, figure in zip(names, built)}


def summary(activity: Activity) -> dict[str, Any]:
    jobs = activity.jobs
    total = int(jobs["total"].sum()) if not jobs.empty else 0
    failed = int(jobs["failed"].sum()) if not jobs.empty else 0
    return {"jobs": len(jobs), "items": total, "failed": failed,
            "success_rate": (1 - failed / total) if total else None}
