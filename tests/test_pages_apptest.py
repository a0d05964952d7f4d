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
    from utils.services import close_services

    widgets.get_services.clear()
    close_services()  # the services are process-wide: one opened outside Streamlit would keep another data folder
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    yield at
    widgets.get_services.clear()


def wait_for_table(at: AppTest, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        running = any(p.proto.text.startswith("Running") for p in at.get("progress"))
        if not running and at.dataframe and "status" in at.dataframe[0].value.columns:  # streamed rows come first
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


def test_work_that_takes_a_while_shows_as_a_running_step_and_the_page_goes_on_once_it_is_done():
    at = AppTest.from_file(str(ROOT / "tests" / "apps" / "await_briefly_app.py"), default_timeout=60).run()
    assert not at.exception
    assert [(step.label, step.state) for step in at.status] == [("Comparing 10 records for duplicates…", "running")]
    assert not [m for m in at.markdown if m.value.startswith("pairs=")]  # the script did not wait for it
    at.session_state["work"].set_result(3)
    at.run()  # in a browser, the waiting line's fragment reruns the page once the work is done
    assert not at.status and "pairs=3" in [m.value for m in at.markdown]


# ---------------------------------------------------------------- Performance page: job history (issue 12, part 3)
def _history_table(at: AppTest):
    tables = [frame.value for frame in at.dataframe if "what" in frame.value.columns]
    return tables[0] if tables else None


def test_performance_job_history_starts_empty_then_lists_a_finished_job(app):
    app.switch_page("pages/performance.py").run()
    before = _history_table(app)  # the manager is process-wide: earlier tests' jobs may be listed
    assert (before is None) == any("No finished jobs yet" in info.value for info in app.info)
    known = set() if before is None else set(before["job"])
    next(b for b in app.button if b.label == "Test threading").click().run()

    def new_runs():
        table = _history_table(app)
        return [] if table is None else [r for r in table.to_dict("records") if r["job"] not in known]

    deadline = time.monotonic() + 60
    while not new_runs() and time.monotonic() < deadline:
        time.sleep(0.5)
        app.run()
    assert [(r["what"], r["status"], r["failed"]) for r in new_runs()] == [("test threading", "completed", 0)]
    assert not app.exception
    app.selectbox(key="history_job").set_value(new_runs()[0]["job"]).run()
    assert any(e.label.startswith("Failures (0)") for e in app.expander)
    assert not app.exception


def _always_fails(item: int) -> int:
    raise RuntimeError(f"item {item} failed")


def test_a_visitors_job_history_never_lists_another_visitors_jobs(tmp_path, monkeypatch):
    from streamlit_app import widgets

    monkeypatch.setenv("SPINDLE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SPINDLE_ADMIN_TOKEN", "an-admin-token")  # visitors are not admins
    widgets.get_services.clear()
    try:
        theirs = widgets.get_manager().map(_always_fails, [1, 2], owner="anon:" + "e" * 32, backend="thread")
        theirs.result()
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        at.switch_page("pages/performance.py").run()
        assert not at.exception
        assert any(m.value == "**Your active jobs**" for m in at.markdown)  # a visitor, not an admin
        table = _history_table(at)
        assert table is None or theirs.id not in set(table["job"])
        shown = " ".join(str(e.value) for e in [*at.text, *at.code, *at.markdown, *at.caption])
        assert theirs.id not in shown and "anon:eeee" not in shown
    finally:
        widgets.get_services.clear()


def test_the_pages_use_the_process_wide_services(app):
    """One Services per process: the pages' handle is utils.services.get_services() (which starts the intake)."""
    from streamlit_app import widgets
    from utils import services

    assert widgets.get_services() is services.get_services()
    assert widgets.get_async_queue() is services.get_async_queue()


def _fails_quoting_a_password(item: int) -> int:
    raise RuntimeError(f"item {item}: could not reach postgresql://spindle:pa55word-xyz@db.example/items")


def test_an_admin_opens_a_jobs_failures_as_text_with_masked_tracebacks(app):
    from streamlit_app import widgets

    failing = widgets.get_manager().map(_fails_quoting_a_password, [1, 2], owner="anon:" + "f" * 32,
                                        backend="thread", name="failing **bold** job")
    failing.result()
    app.switch_page("pages/performance.py").run()  # anonymous without SPINDLE_ADMIN_TOKEN: everyone is an admin
    app.selectbox(key="history_job").set_value(failing.id).run()
    assert not app.exception
    assert any(e.label.startswith("Failures (2)") for e in app.expander)
    lines = [t.value for t in app.text]
    assert "Item 0: RuntimeError item 1: could not reach postgresql://spindle:***@db.example/items" in lines
    tracebacks = [c.value for c in app.code]
    assert tracebacks and all("Traceback" in c and "RuntimeError" in c for c in tracebacks)
    assert "pa55word-xyz" not in " ".join(lines + tracebacks)
