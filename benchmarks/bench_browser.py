"""Browser benchmark: upload to results in a real Chromium, next to the pure processing time of the same data.

`python -m benchmarks.bench_browser [--rows 1000,1000,10000,100000] [--files 200] [--skip-media]`
starts its own server (fresh data folder). Validation: per sheet, upload →
columns guessed, click → job completed, completed → results table, duplicates
and downloads drawn; the first sheet pays the server's cold start (process
pool, imports), later ones run warm. While a run is going, the page's
progress line is sampled to show it moves (live progress). Audio, Image and
Text: 200 files, upload → results table, then each rerun's server time as for
Validation. "Pure processing" is the same per-item work on the threading
manager in this process (2 workers, best of threads and processes, no store,
no browser). Times are printed, never asserted; on a 2-core machine shared
with other work, expect ±20 %.
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


# The page watches itself: a MutationObserver notes when each awaited mark first shows, with the page's clock
# (Date.now(), the same wall clock as time.time() here). Why not Playwright's expect() or a Python loop that
# evaluates a query: expect() retries after 100, 250, 500 and then every 1,000 ms, so waiting with it adds up to a
# second per step that the visitor never waits; and every text query walks the whole page computing styles
# (Playwright's get_by_text took a quarter of the renderer's busy time during a media job, on the same two cores as
# the server). Here one cheap check runs after each burst of DOM changes, and Python only reads the marks.
_MARKS_JS = r"""(specs) => {
    const visible = (el) => el.checkVisibility ? el.checkVisibility() : el.offsetParent !== null;
    const texts = () => Array.from(document.querySelectorAll('p')).filter((p) => p.textContent.length < 300)
        .map((p) => [p, p.textContent.trim()]);
    const tests = {
        prefix: (v) => texts().some(([p, t]) => t.startsWith(v) && visible(p)),
        equals: (v) => texts().some(([p, t]) => t === v && visible(p)),
        includes: (v) => texts().some(([p, t]) => t.includes(v) && visible(p)),
        heading: (v) => Array.from(document.querySelectorAll('h1, h2, h3')).some((h) => h.textContent.trim() === v
                                                                                    && visible(h)),
        testid: (v) => Array.from(document.querySelectorAll(`[data-testid="${v}"]`)).some(visible),
        button: (v) => Array.from(document.querySelectorAll('button')).some(
            (b) => b.textContent.trim().endsWith(v) && !b.disabled && visible(b)),
        buttonShown: (v) => Array.from(document.querySelectorAll('button')).some(
            (b) => b.textContent.trim().endsWith(v) && visible(b)),
    };
    const marks = window.__spindleMarks = {};
    const progress = window.__spindleProgress = [];
    let scheduled = false;
    const check = () => {
        scheduled = false;
        for (const [name, kind, value] of specs) {
            if (!(name in marks) && tests[kind](value)) marks[name] = Date.now();
        }
        for (const [, t] of texts()) if (t.startsWith('Running: ') && !progress.includes(t)) progress.push(t);
    };
    if (window.__spindleObserver) window.__spindleObserver.disconnect();
    window.__spindleObserver = new MutationObserver(() => {
        if (!scheduled) { scheduled = true; setTimeout(check, 0); }
    });
    window.__spindleObserver.observe(document.body, {subtree: true, childList: true, characterData: true,
                                                     attributes: true, attributeFilter: ['disabled']});
    check();
}"""
MARKS_READ_S = 0.1  # how often Python reads the marks the page noted (a tiny evaluation)


def _watch(page: Any, specs: list[tuple[str, str, str]]) -> None:
    """Start noting when each (name, kind, value) mark first shows on the page (see _MARKS_JS)."""
    page.evaluate(_MARKS_JS, [list(spec) for spec in specs])


def _marked(page: Any, *names: str, timeout_s: float) -> float:
    """The wall-clock time (time.time() scale) by which all the named marks had shown."""
    deadline = time.monotonic() + timeout_s
    while True:
        marks = page.evaluate("() => window.__spindleMarks")
        if all(name in marks for name in names):
            return max(marks[name] for name in names) / 1000.0
        if time.monotonic() > deadline:
            raise TimeoutError(f"{', '.join(n for n in names if n not in marks)} not shown in {timeout_s:.0f} s")
        time.sleep(MARKS_READ_S)


def _time_validation(page: Any, url: str, path: Path, rows: int) -> dict[str, float]:
    """Upload → columns guessed → (click) job completed → table, duplicates and downloads, each step timed when the
    page first shows it (the page notes it, see _MARKS_JS); the progress line is kept to show it moves."""
    from playwright.sync_api import expect

    shown = f"{rows:,}"
    page.goto(url)
    expect(page.get_by_text(re.compile("one person per row"))).to_be_visible(timeout=60_000)
    _watch(page, [("mapped", "button", f"Validate {shown} records"),
                  ("completed", "prefix", f"Completed: {shown} of {shown} items"),
                  ("table", "equals", f"{shown} of {shown} rows"),
                  ("duplicates", "includes", "suggested pairs"), ("no_duplicates", "prefix", "No two records"),
                  ("downloads", "buttonShown", "Cleaned file (CSV)")])
    start = time.time()
    page.locator("input[type='file']").first.set_input_files(str(path))
    mapped = _marked(page, "mapped", timeout_s=600)
    clicked = time.time()
    page.get_by_role("button", name=f"Validate {shown} records").click()
    completed = _marked(page, "completed", timeout_s=3600)
    marks_table = _marked(page, "table", "downloads", timeout_s=1800)
    duplicates = _first_of(page, ("duplicates", "no_duplicates"), timeout_s=1800)
    table = max(marks_table, duplicates)
    progress = page.evaluate("() => window.__spindleProgress.length")
    return {"upload_to_mapping_s": mapped - start, "validate_to_completed_s": completed - mapped,
            "completed_to_table_s": table - completed, "total_s": table - start,
            "click_s": max(0.0, clicked - mapped), "progress_updates": float(progress)}


def _first_of(page: Any, names: tuple[str, ...], timeout_s: float) -> float:
    """When the first of the named marks showed (e.g. "pairs found" or "no pairs")."""
    deadline = time.monotonic() + timeout_s
    while True:
        marks = page.evaluate("() => window.__spindleMarks")
        seen = [marks[name] for name in names if name in marks]
        if seen:
            return min(seen) / 1000.0
        if time.monotonic() > deadline:
            raise TimeoutError(f"none of {', '.join(names)} shown in {timeout_s:.0f} s")
        time.sleep(MARKS_READ_S)


def _time_media(page: Any, url: str, kind: str, paths: list[str]) -> dict[str, float]:
    from playwright.sync_api import expect

    page.goto(f"{url}/{kind}")
    expect(page.get_by_role("button", name="Try it with sample files")).to_be_visible(timeout=60_000)
    count = f"{len(paths):,}"
    _watch(page, [("uploaded", "button", "Analyse files"),
                  ("completed", "prefix", f"Completed: {count} of {count} items"),
                  ("results", "heading", "Results"), ("table", "testid", "stDataFrame")])
    start = time.time()
    page.locator("input[type='file']").first.set_input_files(paths)
    uploaded = _marked(page, "uploaded", timeout_s=600)
    page.get_by_role("button", name="Analyse files").click()
    table = _marked(page, "completed", "results", "table", timeout_s=1800)
    # A failed item is quick: a run whose files failed is not comparable with the pure processing time.
    line = page.get_by_text(re.compile(rf"Completed: {count} of {count} items")).first.inner_text()
    failed = re.search(r"([\d,]+) failed", line)
    return {"upload_s": uploaded - start, "total_s": table - start, "files": float(len(paths)),
            "failed": float(failed.group(1).replace(",", "")) if failed else 0.0}


def run(rows: tuple[int, ...] = ROWS, files: int = FILES, media: bool = True,
        rerun_log: Path | None = None) -> dict[str, list[dict]]:
    """Validation runs (the first one cold) and media runs on one server of its own; returns their timings.
    The server's time per rerun goes to `rerun_log` (default: a file in the run's temporary folder)."""
    from playwright.sync_api import sync_playwright

    from streamlit_app.rerun_log import read_log
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
        reruns = rerun_log or data_dir / "reruns.jsonl"  # the server appends each script and fragment run's time
        process, url = start_app(server_dir, extra_env={"SPINDLE_RERUN_LOG": str(reruns)})
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                try:
                    for number, (size, path) in enumerate(sheets):
                        context = browser.new_context(viewport={"width": 1400, "height": 1000})
                        try:
                            logged = len(read_log(reruns))
                            tab = context.new_page()
                            timing = _time_validation(tab, url, path, size)
                            timing.update(_rerun_times(tab, reruns, logged))
                        finally:
                            context.close()
                        timing.update(rows=size, cold=number == 0)
                        out["validation"].append(timing)
                        _print_validation(timing)
                        _print_reruns(timing)
                    if media:
                        for kind, timing in _media_runs(browser, url, data_dir, files, reruns):
                            out["media"].append(timing)
                            _print_media(kind, timing)
                            _print_reruns(timing)
                finally:
                    browser.close()
        finally:
            stop_app(process)
        if out["validation"]:
            _print_pure_validation(max(rows))
    return out


RERUNS_ON_FINISHED_PAGE = 5  # plain reruns of the finished page (the "r" shortcut), after its first render
RERUN_GOALS_MS = (300.0, 150.0)  # server time of each rerun: while the job runs, with the finished job shown


def _rerun_times(page: Any, log_path: Path, logged_before: int) -> dict[str, Any]:
    """Server time per rerun of this run (from the server's SPINDLE_RERUN_LOG, lines after `logged_before`):
    while the job ran, the finished page's first render, then RERUNS_ON_FINISHED_PAGE plain reruns."""
    from streamlit_app.rerun_log import on_finished_page, read_log, summarise, while_running

    shown = read_log(log_path, logged_before)
    page.evaluate("document.activeElement && document.activeElement.blur()")  # the shortcut is off in an input
    for _ in range(RERUNS_ON_FINISHED_PAGE):
        count = len(read_log(log_path))
        for _attempt in range(4):  # a press while the browser still applies the last run can go unheard
            page.keyboard.press("r")  # Streamlit's "rerun" shortcut: the whole script runs again
            deadline = time.monotonic() + 15
            while len(read_log(log_path)) == count and time.monotonic() < deadline:
                time.sleep(0.05)
            if len(read_log(log_path)) > count:
                break
        time.sleep(0.5)  # let the browser take the run in before asking for another one
    again = read_log(log_path, logged_before + len(shown))
    finished = on_finished_page(shown)
    first_full = next((line for line in finished if line["kind"] == "full"), None)
    running = while_running(shown)
    starting = running.pop(0) if running and running[0]["kind"] == "full" else None  # the click that started it
    return {"starting_ms": starting["ms"] if starting else None,
            "reruns_running": summarise(running),
            "reruns_running_fragment": summarise(line for line in running if line["kind"] == "fragment"),
            "reruns_running_full": summarise(line for line in running if line["kind"] == "full"),
            "slowest_running": max(running, key=lambda line: line["ms"], default=None),
            "finished_first_render_ms": first_full["ms"] if first_full else None,
            "reruns_finished": summarise(on_finished_page(again))}


def _print_reruns(t: dict) -> None:
    goal_running, goal_finished = RERUN_GOALS_MS
    running, finished = t["reruns_running"], t["reruns_finished"]
    first, starting, slowest = t["finished_first_render_ms"], t["starting_ms"], t["slowest_running"]
    verdict_running = f" · goal ≤ {goal_running:.0f} ms: {'met' if running.max_ms <= goal_running else 'missed'}" \
        if running.count else ""
    verdict_finished = f" · goal ≤ {goal_finished:.0f} ms: {'met' if finished.max_ms <= goal_finished else 'missed'}" \
        if finished.count else ""
    slowest_text = f"; the slowest ({slowest['kind']}) spent {slowest.get('gc_ms', 0):,.0f} of its " \
                   f"{slowest['ms']:,.0f} ms collecting garbage" if slowest else ""
    print(f"    server time per rerun (SPINDLE_RERUN_LOG): the click that starts the job "
          f"{f'{starting:,.0f} ms' if starting is not None else 'not seen'}; while it runs {running} (fragment "
          f"{t['reruns_running_fragment']}; full {t['reruns_running_full']}{slowest_text}){verdict_running}",
          flush=True)
    print(f"    finished page: first render {f'{first:,.0f} ms' if first is not None else 'not seen'}; "
          f"then {finished}{verdict_finished}", flush=True)


def _media_runs(browser: Any, url: str, data_dir: Path, files: int, reruns: Path):
    from benchmarks import bench_media
    from streamlit_app.rerun_log import read_log

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
            logged = len(read_log(reruns))
            tab = context.new_page()
            timing = _time_media(tab, url, kind, paths)
            timing.update(_rerun_times(tab, reruns, logged))
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


def _no_warm_up() -> None:
    """The process pool's initializer for the pure run: a module function (a lambda cannot reach a process, and the
    pool would fall back to threads, timing the checks under the GIL)."""


def _print_pure_validation(rows: int) -> None:
    from streamlit_app.validation import batch
    from streamlit_app.validation.records import guess_columns
    from streamlit_app.validation.sample_data import sample_sheet

    for size in sorted({1000, 10_000, rows}):
        sheet = sample_sheet(n=size, seed=99)
        records = batch.prepare_records(sheet, guess_columns(sheet))
        pure = _pure_seconds(records, check_one, _no_warm_up)
        print(f"  pure processing, {size:,} records checked (2 workers, no store, no browser): {pure:.1f} s",
              flush=True)


def _print_media(kind: str, t: dict) -> None:
    failed = int(t.get("failed") or 0)
    warning = f" · {failed} FAILED: not comparable, see the server log" if failed else ""
    print(f"  {kind:5s} {int(t['files'])} files: upload → results table {t['total_s']:.1f} s (upload {t['upload_s']:.1f} s) · "
          f"pure processing {t['pure_s']:.1f} s · ratio {t['total_s'] / t['pure_s']:.2f}× (goal ≤ 1.5×){warning}",
          flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(str(r) for r in ROWS),
                        help="sheet sizes in order; the first run is the cold one")
    parser.add_argument("--files", type=int, default=FILES)
    parser.add_argument("--skip-media", action="store_true")
    parser.add_argument("--rerun-log", type=Path, help="keep the server's time per rerun in this file (JSON lines)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    rows = tuple(int(r) for r in args.rows.split(",") if r.strip())
    print(f"Upload to results in Chromium (Validation: {', '.join(f'{r:,}' for r in rows)} rows, first cold; "
          f"{'no media' if args.skip_media else f'{args.files} files each for Audio, Image, Text'})", flush=True)
    run(rows, args.files, media=not args.skip_media, rerun_log=args.rerun_log)


if __name__ == "__main__":
    main()
