"""Where a page's rerun spends its server time: store reads, tables, charts, exports, decoding.

`python -m benchmarks.profile_rerun [--rows 1000] [--files 200] [--reruns 5] [--pages validation,audio]`
makes a finished job per page in a fresh data folder (outside the page, so only
rendering is measured), opens the page in Streamlit's AppTest with that job and
reruns it. Each step below is timed by wrapping the function the page calls;
"rerun" is the whole script run. The first render builds what later reruns
should reuse; a rerun with nothing changed should cost little more than
sending the elements again. AppTest adds its own overhead (it parses the
messages the browser would get), so the rerun figure is an upper bound.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]

# (module, attribute, step label): what a rerun may do that costs time.
STEPS: tuple[tuple[str, str, str], ...] = (
    ("streamlit_app.validation.batch", "results_frame", "results table built"),
    ("streamlit_app.validation.batch", "running_counts", "running counts"),
    ("streamlit_app.validation.batch", "problems_frame", "problems table built"),
    ("streamlit_app.validation.batch", "cleaned_frame", "cleaned table built"),
    ("streamlit_app.validation.batch", "duplicates_for", "duplicates compared"),
    ("streamlit_app.validation.batch", "duplicate_groups", "duplicate groups built"),
    ("streamlit_app.validation.charts", "verdict_counts", "chart built"),
    ("streamlit_app.validation.charts", "problem_counts", "chart built"),
    ("streamlit_app.validation.export", "to_excel_bytes", "Excel export"),
    ("streamlit_app.validation.export", "to_csv_bytes", "CSV export"),
    ("streamlit_app.file_jobs", "results_frame", "results table built"),
    ("streamlit_app.file_jobs", "near_duplicate_images", "look-alikes"),
    ("streamlit_app.file_jobs", "near_duplicate_text_pairs", "look-alikes"),
    ("streamlit_app.file_jobs", "stored_file_bytes", "stored file read"),
    ("streamlit_app.media_charts", "audio_summary_figure", "chart built"),
    ("streamlit_app.media_charts", "image_summary_figure", "chart built"),
    ("streamlit_app.media_charts", "text_summary_figure", "chart built"),
    ("streamlit_app.media_charts", "waveform_figure", "decode + chart (one file)"),
    ("streamlit_app.media_charts", "spectrogram_figure", "decode + chart (one file)"),
    ("streamlit.dataframe_util", "convert_pandas_df_to_arrow_bytes", "table → Arrow (st.dataframe)"),
    ("streamlit.dataframe_util", "convert_arrow_table_to_arrow_bytes", "table → Arrow (st.dataframe)"),
    ("plotly.io", "to_json", "chart → JSON (st.plotly_chart)"),
)
STORE_READS = ("get_job", "item_rows", "item_counts", "list_jobs", "history", "cache_get")


class Tally:
    """Seconds and calls per step for the current script run (filled by the wrappers)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.depth = 0  # guards against counting a step inside another wrapped step twice

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


def _timed(tally: Tally, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            tally.seconds[label] += time.perf_counter() - start
            tally.calls[label] += 1

    wrapper.__wrapped_by_profile__ = True  # type: ignore[attr-defined]
    return wrapper


@contextlib.contextmanager
def instrumented(tally: Tally, store: Any) -> Iterator[None]:
    """Wrap every step and the store's reads; restore them afterwards."""
    patched: list[tuple[Any, str, Any]] = []
    for module_name, attribute, label in STEPS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        original = getattr(module, attribute, None)
        if original is None:
            continue
        patched.append((module, attribute, original))
        setattr(module, attribute, _timed(tally, label, original))
    # Modules that imported a step by name hold their own reference: wrap those too.
    for module_name in ("streamlit_app.widgets", "streamlit.elements.arrow", "streamlit.elements.plotly_chart"):
        module = sys.modules.get(module_name) or importlib.import_module(module_name)
        for _, attribute, label in STEPS:
            original = module.__dict__.get(attribute)
            if callable(original) and not getattr(original, "__wrapped_by_profile__", False):
                patched.append((module, attribute, original))
                setattr(module, attribute, _timed(tally, label, original))
    for name in STORE_READS:
        original = getattr(store, name, None)
        if original is not None:
            patched.append((store, name, original))
            setattr(store, name, _timed(tally, f"store read: {name}", original))
    try:
        yield
    finally:
        for owner, attribute, original in reversed(patched):
            if owner is store:
                delattr(store, attribute)  # back to the class's method
            else:
                setattr(owner, attribute, original)


# ---------------------------------------------------------------- finished jobs to look at

def validation_job(services: Any, owner: str, rows: int) -> str:
    from streamlit_app.validation import batch
    from streamlit_app.validation.records import guess_columns
    from streamlit_app.validation.sample_data import sample_sheet

    sheet = sample_sheet(n=rows, seed=5)
    records = batch.prepare_records(sheet, guess_columns(sheet))
    job_id = batch.start_validation(services, owner, records, {"source": f"profile-{rows}.csv"})
    services.queue.wait(job_id, timeout=1800)
    return job_id


def media_job(services: Any, owner: str, kind: str, files: int) -> str:
    from benchmarks import bench_media
    from streamlit_app import file_jobs

    make = {"audio": bench_media.audio_items, "image": bench_media.image_items, "text": bench_media.text_items}[kind]
    items, _ = make(files)
    analyser = {"audio": "streamlit_app.audio:analyse_audio", "image": "streamlit_app.image:analyse_image",
                "text": "streamlit_app.text:analyse_text"}[kind]
    job_id = file_jobs.start_file_job(services, owner, kind, [(name, data) for name, data, _ in items], analyser, {})
    services.queue.wait(job_id, timeout=1800)
    return job_id


# ---------------------------------------------------------------- running a page

def visitor(services: Any) -> tuple[str, str]:
    """(signed token, owner id) of an anonymous visitor, so the jobs made here are theirs on the page."""
    from streamlit_app import identity

    secret = identity.server_secret(Path(services.settings.data_dir))
    token = identity.new_anonymous_token(secret)
    owner = identity.verify_anonymous_token(secret, token)
    assert owner is not None
    return token, owner


def profile_page(page: str, job_id: str, reruns: int, services: Any, token: str) -> list[dict[str, Any]]:
    """One first render and `reruns` plain reruns of the page showing the finished job."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.session_state["spindle_user"] = token
    at.session_state[f"{page}_job_id"] = job_id
    at.switch_page(f"pages/{page}.py")
    tally = Tally()
    runs = []
    with instrumented(tally, services.store):
        for number in range(reruns + 1):
            tally.reset()
            start = time.perf_counter()
            at.run()
            elapsed = time.perf_counter() - start
            if at.exception:
                raise RuntimeError(f"{page}: {at.exception[0].message}")
            runs.append({"label": "first render" if number == 0 else f"rerun {number}", "total": elapsed,
                         "seconds": dict(tally.seconds), "calls": dict(tally.calls)})
    return runs


def report(page: str, size: str, runs: list[dict[str, Any]]) -> None:
    steps = sorted({s for run in runs for s in run["seconds"]}, key=lambda s: -runs[0]["seconds"].get(s, 0.0))
    later = runs[1:] or runs
    print(f"\n{page} · {size}")
    print(f"  {'step':40s} {'first render':>18s} {'later rerun (mean)':>22s}")
    for step in steps:
        first_s, first_n = runs[0]["seconds"].get(step, 0.0), runs[0]["calls"].get(step, 0)
        mean_s = sum(r["seconds"].get(step, 0.0) for r in later) / len(later)
        mean_n = sum(r["calls"].get(step, 0) for r in later) / len(later)
        print(f"  {step:40s} {first_s * 1000:9.0f} ms ×{first_n:<4d} {mean_s * 1000:11.0f} ms ×{mean_n:<5.1f}")
    mean_total = sum(r["total"] for r in later) / len(later)
    print(f"  {'whole script run':40s} {runs[0]['total'] * 1000:9.0f} ms       {mean_total * 1000:11.0f} ms",
          flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000", help="comma-separated sheet sizes for the Validation page")
    parser.add_argument("--files", type=int, default=200, help="files per media page")
    parser.add_argument("--reruns", type=int, default=3)
    parser.add_argument("--pages", default="validation,audio,image,text")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="spindle-profile-") as folder:
        os.environ["SPINDLE_DATA_DIR"] = folder
        from streamlit_app import widgets

        widgets.get_services.clear()
        services = widgets.get_services()
        token, owner = visitor(services)
        pages = [p.strip() for p in args.pages.split(",") if p.strip()]
        print(f"Server time per script run, AppTest on this machine ({os.cpu_count()} cores); "
              f"jobs are made before timing starts.")
        for page in pages:
            sizes = [int(r) for r in args.rows.split(",")] if page == "validation" else [args.files]
            for size in sizes:
                start = time.perf_counter()
                job_id = validation_job(services, owner, size) if page == "validation" else \
                    media_job(services, owner, page, size)
                made = time.perf_counter() - start
                runs = profile_page(page, job_id, args.reruns, services, token)
                report(page, f"{size:,} {'rows' if page == 'validation' else 'files'} (job made in {made:.1f} s)", runs)
        widgets.get_services.clear()


if __name__ == "__main__":
    main()
