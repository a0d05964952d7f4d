"""Content pages in a real browser: upload a mixed batch, see rows, a chart and the per-file reasons."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from streamlit_app import media_samples
from tests.fixtures.browser import error_boxes_shown, record_error_boxes
from tests.test_browser_app import open_page

pytestmark = pytest.mark.browser


def write_files(folder, files) -> list[str]:
    paths = []
    for name, data, *_ in files:
        path = folder / name
        path.write_bytes(data)
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("page_name, samples", [
    ("audio", media_samples.sample_audio_files),
    ("image", media_samples.sample_image_files),
    ("text", media_samples.sample_text_files),
])
def test_a_mixed_batch_shows_results_a_chart_and_reasons(page, app_url, tmp_path, page_name, samples):
    good = samples()[:3]
    broken = media_samples.broken_files(page_name)[:2]
    record_error_boxes(page)
    open_page(page, app_url, page_name)
    page.locator("input[type='file']").set_input_files(write_files(tmp_path, good + broken))
    expect(page.get_by_role("button", name=re.compile("^Remove "))).to_have_count(5)
    page.get_by_role("button", name="Analyse files").click()
    expect(page.get_by_text(re.compile(r"Completed: 5 of 5 items"))).to_be_visible(timeout=90_000)
    expect(page.get_by_text(re.compile(r"2 failed"))).to_be_visible()
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=30_000)
    table = page.get_by_test_id("stDataFrame").first
    expect(table).to_be_visible()
    for _, _, reason in broken:
        expect(page.get_by_text(re.compile(re.escape(reason), re.I)).first).to_be_attached()
    assert error_boxes_shown(page) == []  # a file's failure is a row with its reason, never an error box


def test_a_job_survives_a_reload(page, app_url):
    open_page(page, app_url, "audio")
    page.get_by_role("button", name="Try it with sample files").click()
    expect(page.get_by_text(re.compile(r"Running: |Completed: "))).to_be_visible(timeout=30_000)
    url = page.url
    assert "user=" in url
    page.reload()
    expect(page.get_by_text(re.compile(r"Completed: \d+ of \d+ items"))).to_be_visible(timeout=90_000)
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
