"""The Validation page in a real browser: upload the sample sheet, watch it run, filter, download the cleaned CSV."""
from __future__ import annotations

import io
import re

import pandas as pd
import pytest
from playwright.sync_api import expect

from streamlit_app.validation.sample_data import sample_sheet
from tests.fixtures.browser import error_boxes_shown, record_error_boxes
from tests.test_browser_app import open_page

pytestmark = pytest.mark.browser
WAIT = 60_000  # ms: the machine is shared and noisy (expect()'s own default is 5 s); a quiet run takes ~20 s in all


def test_upload_validate_filter_and_download_the_cleaned_file(page, app_url, tmp_path):
    sheet = sample_sheet()
    path = tmp_path / "requests.csv"
    sheet.to_csv(path, index=False)

    page.set_default_timeout(WAIT)
    open_page(page, app_url)  # the default page; a fresh session at /validation gets "Page not found"
    expect(page.get_by_text(re.compile("one person per row"))).to_be_visible(timeout=WAIT)  # the empty state
    page.locator("input[type='file']").set_input_files(str(path))
    expect(page.get_by_text(re.compile(r"requests\.csv.*200 rows, 9 columns"))).to_be_visible(timeout=WAIT)
    expect(page.get_by_text("Columns: which column holds what", exact=False)).to_be_visible(timeout=WAIT)
    page.get_by_role("button", name="Validate 200 records").click()

    expect(page.get_by_text(re.compile(r"(Running|Completed): \d+ of 200 items"))).to_be_visible(timeout=WAIT)
    expect(page.get_by_text(re.compile(r"Completed: 200 of 200 items"))).to_be_visible(timeout=120_000)
    expect(page.get_by_text(re.compile(r"^200 of 200 rows$"))).to_be_visible(timeout=WAIT)
    invalid = int(page.get_by_test_id("stMetricValue").nth(1).inner_text().replace(",", ""))
    assert 15 <= invalid < 200

    page.get_by_placeholder("Type to filter rows").fill("@@")  # the planted 'tom@@yahoo.com'
    page.get_by_placeholder("Type to filter rows").press("Enter")
    expect(page.get_by_text(re.compile(r"^1 of 200 rows$"))).to_be_visible(timeout=WAIT)
    page.get_by_placeholder("Type to filter rows").fill("")
    page.get_by_placeholder("Type to filter rows").press("Enter")
    expect(page.get_by_text(re.compile(r"^200 of 200 rows$"))).to_be_visible(timeout=WAIT)

    expect(page.get_by_text(re.compile(r"10 suggested pairs"))).to_be_visible(timeout=WAIT)
    with page.expect_download() as info:
        page.get_by_role("button", name="Cleaned file (CSV)").click()
    download = info.value
    assert download.suggested_filename == "requests-cleaned.csv"
    cleaned = pd.read_csv(io.BytesIO(open(download.path(), "rb").read()), dtype=str, keep_default_na=False,
                          encoding="utf-8-sig")
    assert len(cleaned) == len(sheet)
    assert cleaned["row"].astype(int).tolist() == list(sheet.index)
    assert cleaned["Name"].tolist() == sheet["Name"].tolist()
    assert (cleaned["status"] == "invalid").sum() == invalid
    assert {"problems", "phone_e164", "email_normalized", "address_normalized", "merged_rows"} <= set(cleaned.columns)
    expect(page.get_by_test_id("stException")).to_have_count(0, timeout=WAIT)


def test_watching_a_run_to_its_end_never_shows_an_error(page, app_url, tmp_path):
    """The progress line polls the run and, between polls, a watcher looks for its end: the finished page follows
    at once, and no error box shows at any moment, not even for a poll (the page itself records every one)."""
    path = tmp_path / "requests-3000.csv"
    sample_sheet(3000).to_csv(path, index=False)  # runs about a second: it ends between two polls
    page.set_default_timeout(WAIT)
    record_error_boxes(page)
    open_page(page, app_url)
    page.locator("input[type='file']").set_input_files(str(path))
    page.get_by_role("button", name="Validate 3,000 records").click()
    expect(page.get_by_text(re.compile(r"Completed: 3,000 of 3,000 items"))).to_be_visible(timeout=120_000)
    expect(page.get_by_text(re.compile(r"^3,000 of 3,000 rows$"))).to_be_visible(timeout=WAIT)
    assert error_boxes_shown(page) == []
