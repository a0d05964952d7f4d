"""Fast page tests with Streamlit's AppTest: every page renders, and its main controls do what they say."""
from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["validation", "audio", "image", "text", "analytics", "performance"]


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("SPINDLE_DATA_DIR", str(tmp_path))
    from streamlit_app import widgets

    widgets.get_services.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    yield at
    widgets.get_services.clear()


def wait_for_table(at: AppTest, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        if at.dataframe and "status" in at.dataframe[0].value.columns:
            table = at.dataframe[0].value
            if (table["status"] != "pending").all():
                return table
        time.sleep(0.5)
    raise AssertionError("the results table did not fill in")


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_error(app, page):
    app.switch_page(f"pages/{page}.py").run()
    assert not app.exception
    assert app.title[0].value.lower() == page


def test_performance_settings_retune_the_shared_manager(app):
    from streamlit_app import widgets

    app.switch_page("pages/performance.py").run()
    app.slider(key="perf_settings_workers").set_value(5)
    app.checkbox(key="perf_settings_auto").uncheck().run()
    app.slider(key="perf_settings_chunk").set_value(40)
    app.button(key="perf_settings_apply").click().run()
    settings = widgets.get_manager().pool_settings("default")
    assert (settings["workers"], settings["chunk_size"]) == (5, 40)


@pytest.mark.parametrize("page, broken_reason", [("audio", None), ("image", None), ("text", None)])
def test_sample_files_give_a_row_per_file(app, page, broken_reason):
    app.switch_page(f"pages/{page}.py").run()
    app.button(key=f"{page}_samples").click().run()
    table = wait_for_table(app)
    assert len(table) >= 5
    assert set(table["status"]) <= {"ok", "failed"}
    assert (table["status"] == "ok").sum() >= len(table) - 1
    assert not app.exception


def test_analytics_says_what_to_do_when_nothing_ran(app):
    app.switch_page("pages/analytics.py").run()
    assert any("Nothing processed yet" in info.value for info in app.info)


def test_threaded_operation_shows_the_result_or_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SPINDLE_DATA_DIR", str(tmp_path))
    # A script file, not AppTest.from_function: worker processes started later re-import __main__,
    # and a generated script cannot be re-imported.
    at = AppTest.from_file(str(ROOT / "tests" / "apps" / "threaded_operation_app.py"), default_timeout=60).run()
    assert not at.exception
    texts = [m.value for m in at.markdown]
    assert "result=42" in texts and "failed=None" in texts
    assert [s.value for s in at.success] == ["Answered."]
    assert at.error[0].value == "ValueError: the sheet has no phone column"
