"""The app in a real browser: every page opens, and the Performance page works as a person uses it."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser
PAGES = ["Validation", "Audio", "Image", "Text", "Analytics", "Performance"]


def open_page(page, app_url: str, path: str = "") -> None:
    page.goto(f"{app_url}/{path}")
    expect(page.get_by_test_id("stSidebar")).to_be_visible(timeout=30_000)


def test_navigation_lists_and_opens_every_page(page, app_url):
    open_page(page, app_url)
    for title in PAGES:
        page.get_by_role("link", name=title).click()
        expect(page.get_by_role("heading", name=title).first).to_be_visible()
        expect(page.get_by_test_id("stException")).to_have_count(0)


def test_performance_page_moves_workers_and_runs_a_benchmark(page, app_url, tmp_path):
    open_page(page, app_url, "performance")
    expect(page.get_by_role("heading", name="Performance").first).to_be_visible()
    expect(page.get_by_text("CPU cores")).to_be_visible()

    slider = page.get_by_role("slider", name="Workers").first
    before = int(slider.input_value())
    slider.focus()
    slider.press("ArrowRight")
    expect(slider).to_have_value(str(before + 1))
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_text(re.compile(rf"Pool .default.: {before + 1} workers"))).to_be_visible()

    page.get_by_role("spinbutton").fill("40")  # a small I/O batch keeps the test quick
    page.get_by_role("button", name="Run benchmark").click()
    expect(page.get_by_text("Time per run")).to_be_visible(timeout=60_000)
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text(re.compile(r"faster than sequential|no faster"))).to_be_visible()
    expect(page.get_by_text(re.compile("Recommendation for this workload"))).to_be_visible()
    # The page renders whole; `make screenshot` (tests/screenshot.py) refreshes the README's picture,
    # tests never write tracked files.
    page.set_viewport_size({"width": 1400, "height": 3200})  # Streamlit scrolls inside its own container
    page.get_by_role("heading", name="Performance").first.scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "performance.png"))
