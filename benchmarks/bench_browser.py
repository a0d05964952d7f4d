"""Browser benchmark: upload to results in a real Chromium, next to the pure processing time of the same data.

`python -m benchmarks.bench_browser [--rows 1000,1000,10000,100000] [--files 200] [--skip-media]`
starts its own server (fresh data folder). Validation: per sheet, upload →
columns guessed, click → job completed, completed → results table, duplicates
and downloads drawn; the first sheet pays the server's cold start (process
pool, imports), later ones run warm. While a run is going, the page's
progress line is sampled to show it moves (live progress). Audio, Image and
Text: 200 files, upload → results table. "Pure processing" is the same
per-item work on the threading manager in this process (2 workers, best of
threads and processes, no store, no browser). Times are printed, never
asserted; on a 2-core machine shared with other work, expect ±20 %.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROWS = (1000, 1000, 10_000, 100_000)
FILES = 200
GOALS = {1000: (4.0, 2.0), 10_000: (None, 6.0)}  # rows: (cold goal s, warm goal s), upload → full page


def check_one(record: dict) -> dict:
    """The Validation page's per-record work (picklable, for the pure-processing run)."""
    from streamlit_app.validation.batch import check_record

    return check_record(record, {"options": {"default_region": "US"}})


def _pure_seconds(items: list[Any], fn: Any, warm: Any = None) -> float:
    from benchmarks.bench_media import _parallel

    times = _parallel(items, fn, 2, warm or (lambda: None))
    return min(times.values())


def _expect(page: Any, pattern: str, timeout_s: float) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_text(re.compile(pattern)).first).to_be_visible(timeout=timeout_s * 1000)


def _time_validation(page: Any, url: str, path: Path, rows: int) -> dict[str, float]:
    from playwright.sync_api import expect

    shown = f"{rows:,}"
    page.goto(url)
    expect(page.get_by_text(re.compile("one person per row"))).to_be_visible(timeout=60_000)
    start = time.perf_counter()
    page.locator("input[type='file']").first.set_input_files(str(path))
    validate = page.get_by_role("button", name=f"Validate {shown} records")
    expect(validate).to_be_enabled(timeout=600_000)
    mapped = time.perf_counter()
    validate.click()
    done = re.compile(rf"Completed: {shown} of {shown} items")
    progress_seen: set[str] = set()
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:  # sample the progress line: it must move while the job runs
        texts = page.get_by_text(re.compile(r"^(Running|Completed): ")).all_inner_texts()
        progress_seen.update(t for t in texts if t.startswith("Running"))
        if any(done.search(t) for t in texts):
            break
        time.sleep(0.25)
    completed = time.perf_counter()
    _expect(page, rf"^{shown} of {shown} rows$", 600)
    _expect(page, r"suggested pairs|No two records score", 1800)
    expect(page.get_by_role("button", name="Cleaned file (CSV)")).to_be_visible(timeout=600_000)
    table = time.perf_counter()
    return {"upload_to_mapping_s": mapped - start, "validate_to_completed_s": completed - mapped,
            "completed_to_table_s": table - completed, "total_s": table - start,
            "progress_updates": float(len(progress_seen))}


def _time_media(page: Any, url: str, kind: str, paths: list[str]) -> dict[str, float]:
    from playwright.sync_api import expect

    page.goto(f"{url}/{kind}")
    expect(page.get_by_role("button", name="Try it with sample files")).to_be_visible(timeout=60_000)
    start = time.perf_counter()
    page.locator("input[type='file']").first.set_input_files(paths)
    analyse = page.get_by_role("button", name="Analyse files")
    expect(analyse).to_be_enabled(timeout=600_000)
    uploaded = time.perf_counter()
    analyse.click()
    _expect(page, rf"Completed: {len(paths)} of {len(paths)} items", 1800)
    expect(page.get_by_text(re.compile(r"^Results$")).first).to_be_visible(timeout=600_000)
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible(timeout=600_000)
    table = time.perf_counter()
    return {"upload_s": uploaded - start, "total_s": table - start, "files": float(len(paths))}


def run(rows: tuple[int, ...] = ROWS, files: int = FILES, media: bool = True) -> dict[str, list[dict]]:
    """Validation runs (the first one cold) and media runs on one server of its own; returns their timings."""
    from playwright.sync_api import sync_playwright

    from streamlit_app.validation.sample_data import sample_sheet
    from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS, start_app, stop_app

    out: dict[str, list[dict]] = {"validation": [], "media": []}
    with tempfile.TemporaryDirectory(prefix="spindle-bench-browser-") as folder:
        data_dir = Path(folder)
        sheets = []
        for seed, size in enumerate(rows, start=1):
            path = data_dir / f"requests-{size}-{seed}.csv"
            sample_sheet(n=size, seed=seed).to_csv(path, index=False)
            sheets.append((size, path))
        server_dir = data_dir / "server"  # the server's own data folder, apart from the files we upload
        server_dir.mkdir()
        process, url = start_app(server_dir)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                try:
                    for number, (size, path) in enumerate(sheets):
                        context = browser.new_context(viewport={"width": 1400, "height": 1000})
                        try:
                            timing = _time_validation(context.new_page(), url, path, size)
                        finally:
                            context.close()
                        timing.update(rows=size, cold=number == 0)
                        out["validation"].append(timing)
                        _print_validation(timing)
                    if media:
                        for kind, timing in _media_runs(browser, url, data_dir, files):
                            out["media"].append(timing)
                            _print_media(kind, timing)
                finally:
                    browser.close()
        finally:
            stop_app(process)
        if out["validation"]:
            _print_pure_validation(max(rows))
    return out


def _media_runs(browser: Any, url: str, data_dir: Path, files: int):
    from benchmarks import bench_media

    for kind, make in (("audio", bench_media.audio_items), ("image", bench_media.image_items),
                       ("text", bench_media.text_items)):
        items, fn = make(files)
        folder = data_dir / f"upload-{kind}"
        folder.mkdir()
        paths = []
        for name, data, _ in items:
            (folder / name).write_bytes(data)
            paths.append(str(folder / name))
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            timing = _time_media(context.new_page(), url, kind, paths)
        finally:
            context.close()
        timing["pure_s"] = _pure_seconds(items, fn, bench_media.WARM_UPS.get(kind))
        yield kind, timing


def _print_validation(t: dict) -> None:
    rows = int(t["rows"])
    goal_cold, goal_warm = GOALS.get(rows, (None, None))
    goal = goal_cold if t["cold"] else goal_warm
    verdict = f" · goal {goal:.0f} s: {t['total_s'] / goal:.2f}× of it" if goal else ""
    print(f"  validation {rows:>7,} rows {'cold' if t['cold'] else 'warm'}: upload → columns guessed "
          f"{t['upload_to_mapping_s']:.1f} s · validate → completed {t['validate_to_completed_s']:.1f} s "
          f"({int(t['progress_updates'])} progress updates seen) · completed → table, duplicates, downloads "
          f"{t['completed_to_table_s']:.1f} s · total {t['total_s']:.1f} s{verdict}", flush=True)


def _print_pure_validation(rows: int) -> None:
    from streamlit_app.validation import batch
    from streamlit_app.validation.records import guess_columns
    from streamlit_app.validation.sample_data import sample_sheet

    for size in sorted({1000, 10_000, rows}):
        sheet = sample_sheet(n=size, seed=99)
        records = batch.prepare_records(sheet, guess_columns(sheet))
        pure = _pure_seconds(records, check_one)
        print(f"  pure processing, {size:,} records checked (2 workers, no store, no browser): {pure:.1f} s",
              flush=True)


def _print_media(kind: str, t: dict) -> None:
    print(f"  {kind:5s} {int(t['files'])} files: upload → results table {t['total_s']:.1f} s (upload {t['upload_s']:.1f} s) · "
          f"pure processing {t['pure_s']:.1f} s · ratio {t['total_s'] / t['pure_s']:.2f}× (goal ≤ 1.5×)", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(str(r) for r in ROWS),
                        help="sheet sizes in order; the first run is the cold one")
    parser.add_argument("--files", type=int, default=FILES)
    parser.add_argument("--skip-media", action="store_true")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    rows = tuple(int(r) for r in args.rows.split(",") if r.strip())
    print(f"Upload to results in Chromium (Validation: {', '.join(f'{r:,}' for r in rows)} rows, first cold; "
          f"{'no media' if args.skip_media else f'{args.files} files each for Audio, Image, Text'})", flush=True)
    run(rows, args.files, media=not args.skip_media)


if __name__ == "__main__":
    main()
