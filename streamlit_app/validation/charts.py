"""Plotly figures for the Validation page's summary (built here, drawn by the page).

Why: the page only lays out widgets; these take the results table
(`batch.results_frame`) and return figures, so they can be tested with
`fig.to_dict()` without a browser.
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

STATUS_COLOURS = {
    "valid": "#2e7d32", "complete": "#2e7d32", "invalid": "#c62828", "mismatch": "#c62828",
    "incomplete": "#ef6c00", "unparseable": "#6a1b9a", "missing": "#9e9e9e", "not_checked": "#90a4ae",
    "error": "#4e342e", "failed": "#4e342e", "pending": "#bdbdbd",
}
FIELDS = (("phone", "Phone"), ("email", "E-mail"), ("address", "Address"))
_ORDER = ("valid", "complete", "not_checked", "incomplete", "mismatch", "invalid", "unparseable", "missing", "error",
          "failed", "pending")


def _order(statuses) -> list[str]:
    known = [s for s in _ORDER if s in statuses]
    return known + sorted(s for s in statuses if s not in _ORDER)


def summary_figure(results: pd.DataFrame) -> go.Figure:
    """Left: records by overall status (donut). Right: each field's verdicts as stacked bars."""
    fig = make_subplots(rows=1, cols=2, column_widths=[0.35, 0.65], specs=[[{"type": "domain"}, {"type": "xy"}]],
                        subplot_titles=("Records", "Fields"))
    if results.empty:
        return fig
    overall = results["status"].astype(str).value_counts()
    labels = _order(overall.index)
    fig.add_trace(go.Pie(labels=labels, values=[int(overall[s]) for s in labels], hole=0.55, sort=False,
                         marker={"colors": [STATUS_COLOURS.get(s, "#607d8b") for s in labels]},
                         textinfo="label+value", name="records", showlegend=False), row=1, col=1)
    fields = [(key, label) for key, label in FIELDS if f"{key}_status" in results.columns]
    statuses = set()
    for key, _ in fields:
        statuses |= set(results[f"{key}_status"].replace("", pd.NA).dropna().astype(str))
    for status in _order(statuses):
        counts = [int((results[f"{key}_status"].astype(str) == status).sum()) for key, _ in fields]
        fig.add_trace(go.Bar(name=status, x=[label for _, label in fields], y=counts,
                             marker_color=STATUS_COLOURS.get(status, "#607d8b")), row=1, col=2)
    fig.update_layout(barmode="stack", height=340, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"title": "verdict"})
    fig.update_yaxes(title_text="records", row=1, col=2)
    return fig


def problems_figure(results: pd.DataFrame, top: int = 10) -> go.Figure:
    """The most common problems (field: reason), most frequent on top."""
    counts: dict[str, int] = {}
    for key, label in FIELDS:
        status, reason = f"{key}_status", f"{key}_reason"
        if status not in results.columns or reason not in results.columns:
            continue
        bad = results[~results[status].astype(str).isin(("valid", "complete", "not_checked", ""))]
        for text in bad[reason].astype(str):
            name = f"{label}: {text or 'problem'}"
            if len(name) > 50:
                name = name[:48] + "…"
            counts[name] = counts.get(name, 0) + 1
    if "status" in results.columns:
        failed = int((results["status"] == "failed").sum())
        if failed:
            counts["Record: could not be checked"] = failed
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    fig = go.Figure(go.Bar(x=[n for _, n in ranked][::-1], y=[name for name, _ in ranked][::-1], orientation="h",
                           marker_color="#c62828"))
    fig.update_layout(title="Most common problems", height=max(220, 40 + 28 * len(ranked)),
                      margin={"l": 10, "r": 10, "t": 40, "b": 10}, xaxis_title="records",
                      yaxis={"automargin": True})
    return fig


def duplicate_scores_figure(pairs: pd.DataFrame, threshold: float) -> go.Figure:
    """How the suggested pairs score, with the threshold marked."""
    fig = go.Figure()
    if pairs is not None and len(pairs):
        for source, colour in (("upload", "#1565c0"), ("history", "#6a1b9a")):
            part = pairs[pairs["source"] == source]
            if len(part):
                fig.add_trace(go.Histogram(x=part["score"].astype(float), name=f"within {source}" if source == "upload"
                                           else "against history", marker_color=colour, xbins={"size": 2}))
    fig.add_vline(x=float(threshold), line_dash="dash", annotation_text="threshold")
    fig.update_layout(barmode="stack", height=240, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      xaxis={"title": "score", "range": [max(0.0, float(threshold) - 5), 100.5]}, yaxis_title="pairs")
    return fig
