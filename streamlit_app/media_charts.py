"""Plotly figures for the Audio, Image and Text pages: per-file waveform/spectrogram and per-batch summaries.

Kept apart from the analysers so workers never import plotly. Audio figures are drawn from
the small preview the worker computed (streamlit_app.audio.chart_preview), so the page
never decodes a file in its script thread.
Missing columns or empty tables give an empty figure with a message, never an error.
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from streamlit_app.audio import (
    PREVIEW_SECONDS,
    SPECTROGRAM_BINS,
    SPECTROGRAM_FRAMES,
    WAVEFORM_POINTS,
    chart_preview,
    decode_audio,
    preview_arrays,
)

__all__ = ["SPECTROGRAM_BINS", "SPECTROGRAM_FRAMES", "WAVEFORM_POINTS"]


def _empty(title: str, message: str) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(title=title, xaxis_visible=False, yaxis_visible=False)
    figure.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    return figure


def _has(df: pd.DataFrame | None, *columns: str) -> bool:
    if df is None or df.empty or not all(c in df.columns for c in columns):
        return False
    return bool(df[list(columns)].notna().all(axis=1).any())


def _numeric(df: pd.DataFrame, column: str) -> pd.Series:
    if column not in df.columns:
        return pd.Series(np.nan, index=df.index)
    return pd.to_numeric(df[column], errors="coerce")


# ---------------------------------------------------------------- one audio file


def plain(text: object) -> str:
    """User text (a file name) for a chart: plotly renders a little HTML in titles and hovers, so escape it."""
    return html.escape(str(text), quote=False)


def _plain_names(table: pd.DataFrame) -> list[str] | None:
    return [plain(n) for n in table["name"]] if "name" in table else None


def _preview(source: str | bytes, name: str) -> str:
    """The worker's chart preview (pages pass the stored row's), or one made by the same guarded decode."""
    if isinstance(source, str):
        return source
    audio = decode_audio(name, source, max_seconds=PREVIEW_SECONDS)
    return chart_preview(audio.mono(), audio.sample_rate)


def waveform_figure(source: str | bytes, name: str = "audio.wav") -> go.Figure:
    """Min/max envelope of the (mono) waveform in at most WAVEFORM_POINTS columns."""
    arrays = preview_arrays(_preview(source, name))
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=arrays["times"], y=arrays["highs"], mode="lines", line_width=1, name="max"))
    figure.add_trace(go.Scatter(x=arrays["times"], y=arrays["lows"], mode="lines", line_width=1, name="min",
                                fill="tonexty"))
    figure.update_layout(title=f"Waveform: {plain(name)}", xaxis_title="seconds", yaxis_title="amplitude", showlegend=False)
    figure.update_yaxes(range=[-1, 1])
    return figure


def spectrogram_figure(source: str | bytes, name: str = "audio.wav") -> go.Figure:
    """Short-time spectrum in dB, at most SPECTROGRAM_FRAMES x SPECTROGRAM_BINS cells."""
    arrays = preview_arrays(_preview(source, name))
    decibels = arrays["decibels"].astype(np.float32)
    figure = go.Figure(
        go.Heatmap(
            x=arrays["spec_times"].astype(np.float32),
            y=arrays["freqs"],
            z=decibels.T,
            colorscale="Viridis",
            zmin=float(decibels.max()) - 80.0,
            colorbar_title="dB",
        )
    )
    figure.update_layout(title=f"Spectrogram: {plain(name)}", xaxis_title="seconds", yaxis_title="Hz")
    return figure


# ---------------------------------------------------------------- batch summaries


def audio_summary_figure(df: pd.DataFrame) -> go.Figure:
    """Duration against loudness (LUFS, or RMS dBFS where LUFS is missing), one dot per file."""
    title = "Audio: duration vs loudness"
    if not _has(df, "duration_s"):
        return _empty(title, "no analysed audio files yet")
    table = df.copy()
    table["loudness"] = _numeric(table, "loudness_lufs").fillna(_numeric(table, "rms_dbfs"))
    table = table.dropna(subset=["duration_s", "loudness"])
    if table.empty:
        return _empty(title, "no file had measurable loudness")
    groups = table["format"].fillna("?") if "format" in table else pd.Series("audio", index=table.index)
    figure = go.Figure()
    for label, part in table.groupby(groups):
        figure.add_trace(
            go.Scatter(x=part["duration_s"], y=part["loudness"], mode="markers", name=str(label), text=_plain_names(part),
                       hovertemplate="%{text}<br>%{x:.2f} s, %{y:.1f} LU<extra></extra>")
        )
    figure.update_layout(title=title, xaxis_title="duration (s)", yaxis_title="loudness (LUFS; RMS dBFS if too short)")
    return figure


def image_summary_figure(df: pd.DataFrame) -> go.Figure:
    """Brightness against blur score (log scale: sharp pictures score orders of magnitude higher)."""
    title = "Images: brightness vs sharpness"
    if not _has(df, "brightness", "blur_score"):
        return _empty(title, "no analysed images yet")
    table = df.dropna(subset=["brightness", "blur_score"])
    figure = go.Figure(
        go.Scatter(x=table["brightness"], y=table["blur_score"].clip(lower=0.01), mode="markers", text=_plain_names(table),
                   hovertemplate="%{text}<br>brightness %{x:.2f}, blur score %{y:.0f}<extra></extra>")
    )
    figure.update_layout(title=title, xaxis_title="brightness (0 black - 1 white)", yaxis_title="blur score (higher is sharper)")
    figure.update_yaxes(type="log")
    figure.update_xaxes(range=[0, 1])
    return figure


def text_summary_figure(df: pd.DataFrame) -> go.Figure:
    """Files per detected language beside a histogram of English sentiment."""
    title = "Text: languages and sentiment"
    if not _has(df, "language"):
        return _empty(title, "no analysed text files yet")
    figure = make_subplots(rows=1, cols=2, subplot_titles=("files per language", "sentiment (English files)"))
    counts = df["language"].fillna("unknown").value_counts()
    figure.add_trace(go.Bar(x=counts.index.tolist(), y=counts.values.tolist(), name="files"), row=1, col=1)
    if "sentiment_compound" in df and df["sentiment_compound"].notna().any():
        figure.add_trace(
            go.Histogram(x=df["sentiment_compound"].dropna(), xbins=dict(start=-1, end=1, size=0.1), name="compound"),
            row=1, col=2,
        )
    figure.update_xaxes(title_text="compound (-1 negative, +1 positive)", range=[-1, 1], row=1, col=2)
    figure.update_layout(title=title, showlegend=False)
    return figure
