"""The duplicate group picker at thousands of groups: a page of them at a time, or the groups with a given row."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from streamlit_app.validation import batch
from tests.test_validation_page import wait_for_results

ROOT = Path(__file__).resolve().parents[1]


def labels(count: int) -> list[str]:
    return [f"Rows {10 * n + 2}, {10 * n + 7} · 97.5 % likely the same person" for n in range(count)]


def test_groups_are_listed_a_page_at_a_time():
    many = labels(batch.GROUP_PAGE * 2 + 5)
    assert batch.group_positions(many) == list(range(batch.GROUP_PAGE))
    assert batch.group_positions(many, page=3) == list(range(batch.GROUP_PAGE * 2, batch.GROUP_PAGE * 2 + 5))
    assert batch.group_positions(many, page=9) == []  # past the end: nothing, the page says so


def test_a_row_number_lists_the_groups_with_that_row_and_no_other():
    many = [*labels(50), "Row 12 ~ history #7 (requests-12.csv) · 99.0 % likely the same person",
            "Row 3 ~ history #12 (sheet.csv) · 96.0 % likely the same person"]
    assert batch.group_positions(many, row=12) == [1, 50]  # "Rows 12, 17" and row 12's match with history
    assert batch.group_positions(many, row=2) == [0]  # not 12, 22, … nor the 2 of a percentage
    assert batch.group_positions(many, row=13) == []


@pytest.fixture
def sample_run(tmp_path, monkeypatch):
    """The Validation page after the sample run (10 duplicate groups), with a picker page of 3 groups."""
    from streamlit_app import widgets

    monkeypatch.setenv("SPINDLE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(batch, "GROUP_PAGE", 3)
    widgets.get_services.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/validation.py").run()
    at.button(key="validation_sample").click().run()
    wait_for_results(at)  # the table, and the duplicates compared
    yield at
    widgets.get_services.clear()


def test_the_page_lists_a_page_of_groups_or_those_with_a_typed_row(sample_run):
    at = sample_run
    picker = at.selectbox(key="validation_group")
    assert len(picker.options) == 3  # of the 10 groups the sample has
    second = next(n for n in at.number_input if n.key.startswith("validation_group_page_"))
    second.set_value(2).run()
    assert not at.exception
    page_two = at.selectbox(key="validation_group").options
    assert len(page_two) == 3 and not set(page_two) & set(picker.options)
    row = int(re.search(r"\d+", page_two[1]).group())
    at.number_input(key="validation_group_row").set_value(row).run()
    found = at.selectbox(key="validation_group").options
    assert page_two[1] in found and all(re.search(rf"(?<!\d){row}(?!\d)", label) for label in found)
    assert at.selectbox(key="validation_group").value in found
