"""What the Validation page's charts show, as small tables (built here, drawn by the page).

Why: the page only lays out widgets; these take the results table (`batch.results_frame`) and return
the counts, so they can be tested without a browser. The page draws them as Vega-Lite bar charts:
plotly's browser library took ~0.8 s to load and draw in Chromium, and held the table, duplicates and
downloads back that long after a 1,000-row run. Each chart's spec is built here once per job
(`verdict_chart`, `problem_chart`): st.bar_chart built an Altair chart and validated it against the
Vega-Lite schema on every rerun, ~25 ms a chart whatever the sheet's size.
"""
from __future__ import annotations

import pandas as pd

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


def verdict_counts(results: pd.DataFrame) -> pd.DataFrame:
    """Records by verdict, for the whole record and for each field: rows Record, Phone, E-mail, Address;
    one column per verdict (in _ORDER), counts as values. Drawn as stacked bars (`verdict_colours` in order)."""
    rows: dict[str, pd.Series] = {}
    if results.empty:
        return pd.DataFrame()
    rows["Record"] = results["status"].astype(str).value_counts()
    for key, label in FIELDS:
        if f"{key}_status" in results.columns:
            rows[label] = results[f"{key}_status"].replace("", pd.NA).dropna().astype(str).value_counts()
    table = pd.DataFrame(rows).T.fillna(0).astype(int)
    return table[_order(table.columns)]


def verdict_colours(counts: pd.DataFrame) -> list[str]:
    """One colour per verdict column of `verdict_counts`, in its order."""
    return [STATUS_COLOURS.get(str(status), "#607d8b") for status in counts.columns]


def problem_counts(results: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """The most common problems ("field: reason") and how many records have each, most frequent first."""
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
    return pd.DataFrame(ranked, columns=["problem", "records"])


Chart = tuple[pd.DataFrame, dict]  # (data, Vega-Lite spec) for st.vega_lite_chart
WHOLE_NUMBERS = {"tickMinStep": 1, "format": "d"}  # an axis of record counts: no 0.4 records


def verdict_chart(counts: pd.DataFrame, height: int = 240) -> Chart:
    """`verdict_counts` as stacked horizontal bars, one bar per row (Record, Phone, …), verdicts in their order."""
    verdicts = [str(v) for v in counts.columns]
    long = counts.rename_axis("field").reset_index().melt(id_vars="field", var_name="verdict", value_name="records")
    long["verdict"] = long["verdict"].astype(str)
    long["position"] = long["verdict"].map({v: i for i, v in enumerate(verdicts)})
    long = long[long["records"] > 0].reset_index(drop=True)
    spec = {"mark": {"type": "bar"}, "height": height, "encoding": {
        "y": {"field": "field", "type": "nominal", "sort": [str(i) for i in counts.index], "title": None,
              "axis": {"labelOverlap": False}},
        "x": {"field": "records", "type": "quantitative", "stack": "zero", "title": "records",
              "axis": WHOLE_NUMBERS},
        "color": {"field": "verdict", "type": "nominal", "title": None,
                  "legend": {"orient": "right"},
                  "scale": {"domain": verdicts, "range": verdict_colours(counts)}},
        "order": {"field": "position", "type": "quantitative"},
        "tooltip": [{"field": "field", "type": "nominal"}, {"field": "verdict", "type": "nominal"},
                    {"field": "records", "type": "quantitative"}]}}
    return long, spec


def problem_chart(problems: pd.DataFrame) -> Chart:
    """`problem_counts` as horizontal bars, the most frequent problem first."""
    spec = {"mark": {"type": "bar", "color": "#c62828"}, "height": max(160, 30 + 26 * len(problems)), "encoding": {
        "y": {"field": "problem", "type": "nominal", "sort": "-x", "title": None, "axis": {"labelLimit": 220}},
        "x": {"field": "records", "type": "quantitative", "title": "records", "axis": WHOLE_NUMBERS},
        "tooltip": [{"field": "problem", "type": "nominal"}, {"field": "records", "type": "quantitative"}]}}
    return problems, spec
