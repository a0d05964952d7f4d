"""`make screenshot`: the README's picture of the Performance page, taken from the real app in Chromium.

Starts the app on a free port with a throwaway data folder, runs a small benchmark on the
Performance page as a person would, and writes docs/performance.png. Tests never write
tracked files; this script is the one place that refreshes the picture.
"""
from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS, ROOT, start_app, stop_app

TARGET = ROOT / "docs" / "performance.png"


def take(target: Path = TARGET) -> Path:
    from playwright.sync_api import expect, sync_playwright

    with tempfile.TemporaryDirectory(prefix="spindle-screenshot-") as data:
        process, url = start_app(Path(data))
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(60_000)
                page.goto(f"{url}/performance")
                expect(page.get_by_role("heading", name="Performance").first).to_be_visible()
                page.get_by_role("spinbutton").fill("40")
                page.get_by_role("button", name="Run benchmark").click()
                expect(page.get_by_text(re.compile("Recommendation for this workload"))).to_be_visible()
                page.set_viewport_size({"width": 1400, "height": 3200})  # Streamlit scrolls inside its container
                page.get_by_role("heading", name="Performance").first.scroll_into_view_if_needed()
                page.wait_for_timeout(1500)
                target.parent.mkdir(exist_ok=True)
                page.screenshot(path=str(target))
                browser.close()
        finally:
            stop_app(process)
    return target


if __name__ == "__main__":
    print(f"wrote {take(Path(sys.argv[1]) if len(sys.argv) > 1 else TARGET)}")
