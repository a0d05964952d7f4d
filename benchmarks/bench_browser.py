"""Browser benchmark: a 1,000-row sheet from upload to a validated, filterable table, in a real Chromium.

`python -m benchmarks.bench_browser` starts its own server (fresh data folder)
and times, per run: upload → columns guessed (the sheet is read and mapped),
click → job completed (records checked in worker processes), completed →
results table, duplicates and downloads drawn. The first run includes the
process pool's cold start; the second uploads a different sheet of the same
size on the warm server. Times are printed, never asserted.
"""
from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

ROWS = 1000


def _time_one(page, url: str, path: Path, rows: int) -> dict[str, float]:
    from playwright.sync_api import expect

    shown = f"{rows:,}"
    page.goto(url)  # Validation is the default page; /validation shows "Page not found" to a fresh session
    expect(page.get_by_test_id("stSidebar")).to_be_visible(timeout=60_000)
    expect(page.get_by_text(re.compile("one person per row"))).to_be_visible(timeout=60_000)
    start = time.perf_counter()
    page.locator("input[type='file']").set_input_files(str(path))
    validate = page.get_by_role("button", name=f"Validate {shown} records")
    expect(validate).to_be_enabled(timeout=120_000)
    mapped = time.perf_counter()
    validate.click()
    expect(page.get_by_text(re.compile(rf"Completed: {shown} of {shown} items"))).to_be_visible(timeout=300_000)
    completed = time.perf_counter()
    expect(page.get_by_text(re.compile(rf"^{shown} of {shown} rows$"))).to_be_visible(timeout=120_000)
    expect(page.get_by_text(re.compile(r"suggested pairs|No two records score"))).to_be_visible(timeout=120_000)
    expect(page.get_by_role("button", name="Cleaned file (CSV)")).to_be_visible(timeout=120_000)
    table = time.perf_counter()
    return {"upload_to_mapping_s": mapped - start, "validate_to_completed_s": completed - mapped,
            "completed_to_table_s": table - completed, "total_s": table - start}


def run(rows: int = ROWS) -> list[dict[str, float]]:
    """Two timed runs (cold, then warm) on a server of its own; returns their timings."""
    from playwright.sync_api import sync_playwright

    from streamlit_app.validation.sample_data import sample_sheet
    from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS, start_app, stop_app

    timings = []
    with tempfile.TemporaryDirectory(prefix="spindle-bench-browser-") as folder:
        data_dir = Path(folder)
        sheets = []
        for seed in (1, 2):
            path = data_dir / f"requests-{seed}.csv"
            sample_sheet(n=rows, seed=seed).to_csv(path, index=False)
            sheets.append(path)
        process, url = start_app(data_dir)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                try:
                    for path in sheets:
                        context = browser.new_context(viewport={"width": 1400, "height": 1000})
                        try:
                            timings.append(_time_one(context.new_page(), url, path, rows))
                        finally:
                            context.close()
                finally:
                    browser.close()
        finally:
            stop_app(process)
    return timings


def main() -> None:
    print(f"Validation page, {ROWS:,}-row CSV, upload to validated table in Chromium (2 runs: cold, warm)")
    for label, timing in zip(("cold", "warm"), run()):
        print(f"  {label}: upload → columns guessed {timing['upload_to_mapping_s']:.1f} s · "
              f"validate → completed {timing['validate_to_completed_s']:.1f} s · "
              f"completed → table, duplicates, downloads {timing['completed_to_table_s']:.1f} s · "
              f"total {timing['total_s']:.1f} s", flush=True)


if __name__ == "__main__":
    main()
