"""The Validation page with Streamlit's AppTest: empty state, sample run to results, mapping, sheets, broken files, reload."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.fixtures.geocode_server import geocode_server  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "validation"
PAGE = "pages/validation.py"
NOT_MAPPED = "(not in this sheet)"


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SPINDLE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("GOOGLE_MAPS_API_KEY", raising=False)
    from streamlit_app import widgets

    widgets.get_services.clear()
    yield tmp_path
    widgets.get_services.clear()


def open_page(user: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    if user:
        at.query_params["user"] = user
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception
    return at


@pytest.fixture
def app(data_dir):
    return open_page()


def results_table(at: AppTest):
    for frame in at.dataframe:
        if "problems" in frame.value.columns:
            return frame.value
    return None


def wait_for_results(at: AppTest, timeout: float = 120.0):
    """Rerun (run_every never fires in AppTest) until the finished run's table shows, duplicates compared."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, at.exception
        table = results_table(at)
        streaming = any("so far" in caption.value for caption in at.caption)  # the live table of a running job
        waiting = any(step.label.startswith(("Preparing", "Comparing")) for step in at.status)  # not built yet
        if table is not None and (table["status"] != "pending").all() and not streaming and not waiting:
            return table
        time.sleep(0.3)
    raise AssertionError("the validation results did not show")


def upload(at: AppTest, name: str, data: bytes | None = None) -> AppTest:
    data = (DATA / name).read_bytes() if data is None else data
    mime = "text/csv" if name.endswith(".csv") else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    at.file_uploader(key="validation_upload").set_value((name, data, mime)).run()
    assert not at.exception, at.exception
    return sheet_read(at)


def sheet_read(at: AppTest) -> AppTest:
    """The sheet is read as a job: rerun (run_every never fires in AppTest) until the page has it."""
    deadline = time.monotonic() + 60
    while any("in a worker process" in step.label for step in at.status) and time.monotonic() < deadline:
        time.sleep(0.05)
        at.run()
        assert not at.exception, at.exception
    return at


def test_empty_page_explains_itself_and_offers_the_sample(app):
    assert app.title[0].value == "Validation"
    assert any("one person per row" in info.value for info in app.info)
    assert app.button(key="validation_sample").label == "Try it with sample data"
    assert app.button(key="validation_start").disabled  # nothing to validate yet
    assert any("offline" in caption.value for caption in app.caption)  # no Google key: the offline parser
    assert app.slider(key="validation_threshold").value == 90.0
    assert app.selectbox(key="validation_region").value == "US"
    assert app.toggle(key="validation_against_history").value is True


def test_sample_data_runs_to_results_duplicates_downloads_and_history(app):
    app.button(key="validation_sample").click().run()
    assert not app.exception
    assert app.selectbox(key="validation_map_phone").value == "Phone"  # guessed columns
    table = wait_for_results(app)
    assert len(table) == 200 and set(table["status"]) <= {"valid", "invalid"}
    metrics = {m.label: int(m.value.replace(",", "")) for m in app.metric}
    assert metrics["Valid"] + metrics["Invalid"] == 200 and metrics["Failed"] == metrics["Waiting"] == 0
    assert metrics["Valid"] == (table["status"] == "valid").sum()
    headers = [h.value for h in app.subheader]
    assert "Possible duplicates" in headers and "Download and keep" in headers
    assert any("10 suggested pairs" in c.value for c in app.caption)
    why = "\n".join(t.value for t in app.text)  # "Why these two?": each field's evidence in words
    assert "likely the same person" in why and ": very strong" in why
    labels = {b.label for b in app.get("download_button")}
    assert {"Cleaned file (CSV)", "Cleaned file (Excel)", "Problems report (CSV)"} <= labels

    app.button(key="validation_accept_all").click().run()
    assert not app.exception
    assert any("10 of 10 suggested merges accepted" in c.value for c in app.caption)
    assert any("cleaned file has 190 records" in c.value for c in app.caption)

    app.button(key="validation_accept_history").click().run()
    assert any("to history" in s.value for s in app.success)
    app.run()
    assert any("are in history" in c.value for c in app.caption)


def test_the_finished_page_draws_both_charts(app):
    """The charts are drawn at the end of the script (into places kept above the table): they are still there."""
    app.button(key="validation_sample").click().run()
    wait_for_results(app)
    assert len(app.get("vega_lite_chart")) == 2
    assert {"Records and fields by verdict", "Most common problems"} <= {caption.value for caption in app.caption}


def test_the_filter_narrows_the_results_table(app):
    app.button(key="validation_sample").click().run()
    wait_for_results(app)
    app.multiselect(key="validation_results_filter").select("invalid").run()
    shown = results_table(app)
    assert len(shown) > 0 and set(shown["status"]) == {"invalid"}


def test_a_corrected_mapping_is_used_for_the_run(app):
    upload(app, "good.csv")
    assert app.selectbox(key="validation_map_email").value == "Email"
    assert app.selectbox(key="validation_map_phone").value == "Phone"
    assert "Validate 6 records" in app.button(key="validation_start").label
    app.selectbox(key="validation_map_phone").set_value(NOT_MAPPED).run()
    app.selectbox(key="validation_map_email").set_value("Phone").run()
    assert not any("more than one field" in w.value for w in app.warning)  # each column used once
    app.button(key="validation_start").click().run()
    table = wait_for_results(app)
    assert len(table) == 6
    assert (table["phone_status"] == "missing").all()
    assert (table["email_status"] == "invalid").all()


def test_the_same_column_chosen_twice_is_flagged(app):
    upload(app, "good.csv")
    app.selectbox(key="validation_map_email").set_value("Phone").run()
    assert any("more than one field: Phone" in w.value for w in app.warning)


def test_a_workbook_asks_which_sheet(app):
    upload(app, "two_sheets.xlsx")
    sheet = next(s for s in app.selectbox if s.label == "Sheet")
    assert sheet.options == ["Requests", "Staff"]
    assert any("7 rows" in c.value for c in app.caption)
    sheet_read(sheet.set_value("Staff").run())
    assert not app.exception
    assert any("2 rows" in c.value for c in app.caption)
    assert app.selectbox(key="validation_map_name").value == "Staff Name"


@pytest.mark.parametrize("name, message", [
    ("garbage.csv", "binary file"),
    ("truncated.xlsx", "damaged or truncated"),
    ("header_only.csv", "no data rows"),
    ("latin1.csv", None),  # a Windows encoding is read, not refused
])
def test_broken_files_show_a_message_not_a_traceback(app, name, message):
    upload(app, name)
    assert not app.exception
    errors = [e.value for e in app.error]
    if message is None:
        assert errors == []
        assert not app.button(key="validation_start").disabled
    else:
        assert len(errors) == 1 and name in errors[0] and message in errors[0]
        assert app.button(key="validation_start").disabled


def test_an_empty_upload_says_so(app):
    upload(app, "empty.csv", b"")
    assert any("the file is empty" in e.value for e in app.error)


def test_the_run_comes_back_after_a_reload(data_dir):
    first = open_page()
    first.button(key="validation_sample").click().run()
    wait_for_results(first)
    user = first.session_state["spindle_user"]
    again = open_page(user=user)  # a new session of the same person: nothing in session_state
    table = wait_for_results(again)
    assert len(table) == 200
    assert any("sample-book-requests.csv" in c.value for c in again.caption)


def test_with_a_maps_key_addresses_are_geocoded_as_a_second_step(data_dir, monkeypatch, geocode_server):
    from tests.fixtures.geocode_server import TEST_API_KEY, ServerConfig

    geocode_server.reset(ServerConfig(answer_all=True))
    monkeypatch.setenv("GOOGLE_MAPS_API_KEY", TEST_API_KEY)
    monkeypatch.setenv("GOOGLE_MAPS_BASE_URL", geocode_server.base_url)
    at = open_page()
    assert any("geocode the addresses" in c.value for c in at.caption)
    upload(at, "good.csv")
    at.button(key="validation_start").click().run()
    wait_for_results(at)
    start = at.button(key="validation_geocode_start")
    assert start.label == "Geocode 6 addresses"
    start.click().run()
    deadline = time.monotonic() + 60
    geocoded = None
    while time.monotonic() < deadline:  # rows fill in as answers arrive
        at.run()
        assert not at.exception, at.exception
        geocoded = next((f.value for f in at.dataframe if "geocode_status" in f.value.columns), None)
        if geocoded is not None and (geocoded["geocode_status"] == "ok").all():
            break
        time.sleep(0.3)
    assert geocoded is not None and len(geocoded) == 6 and (geocoded["geocode_status"] == "ok").all()
    assert len(geocode_server.requests) == 6
