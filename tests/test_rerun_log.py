"""The rerun log (SPINDLE_RERUN_LOG): one line of server time per script or fragment run, read by the benchmark."""
from __future__ import annotations

import gc
import json
import logging
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from streamlit_app import rerun_log

ROOT = Path(__file__).resolve().parents[1]


class Rerun(BaseException):
    """Stands in for Streamlit's st.rerun/st.stop, which end a run by raising a BaseException."""


def test_a_timed_run_appends_one_line_with_its_page_kind_time_and_job_state(tmp_path):
    path = tmp_path / "reruns.jsonl"
    with rerun_log.timed(path, "?", "full") as record:
        assert record is not None
        record.page = "Validation"  # known once st.navigation has resolved the page
        rerun_log.note_job_state("running")
        time.sleep(0.01)
    [line] = rerun_log.read_log(path)
    assert (line["page"], line["kind"], line["job"]) == ("Validation", "full", "running")
    assert line["ms"] >= 10 and line["at"] > 0


def test_garbage_collection_during_a_run_is_counted_with_it(tmp_path):
    path = tmp_path / "reruns.jsonl"
    with rerun_log.timed(path, "Validation", "fragment"):
        held = [[number] for number in range(200_000)]  # objects for the collector to walk
        gc.collect()  # any thread's collection stops the script thread as well
    with rerun_log.timed(path, "Validation", "fragment"):
        pass
    collected, quiet = rerun_log.read_log(path)
    assert collected["gc_ms"] > 0 and quiet["gc_ms"] < collected["gc_ms"]
    assert collected["gc_ms"] <= collected["ms"] and len(held) == 200_000


def test_a_fragment_run_inside_a_full_run_counts_in_the_full_run_only(tmp_path):
    path = tmp_path / "reruns.jsonl"
    with rerun_log.timed(path, "Audio", "full"):
        assert rerun_log.current_page() == "Audio"
        with rerun_log.timed(path, rerun_log.current_page(), "fragment") as inner:
            assert inner is None
            rerun_log.note_job_state("completed")  # the fragment's first run tells the full run the state
    with rerun_log.timed(path, "Audio", "fragment"):
        rerun_log.note_job_state("completed")
    lines = rerun_log.read_log(path)
    assert [(line["kind"], line["job"]) for line in lines] == [("full", "completed"), ("fragment", "completed")]
    assert rerun_log.current_page() is None  # between runs nothing is being timed


def test_a_run_ended_by_rerun_or_stop_is_still_logged(tmp_path):
    path = tmp_path / "reruns.jsonl"
    with pytest.raises(Rerun), rerun_log.timed(path, "Text", "fragment"):
        rerun_log.note_job_state("completed")
        raise Rerun
    assert [line["job"] for line in rerun_log.read_log(path)] == ["completed"]


def test_without_a_path_nothing_is_timed_or_written(tmp_path):
    with rerun_log.timed("", "Validation", "full") as record:
        assert record is None
        rerun_log.note_job_state("running")  # harmless when nothing is timed
        assert rerun_log.current_page() is None
    assert list(tmp_path.iterdir()) == []


def test_a_log_that_cannot_be_written_is_a_warning_not_an_error(tmp_path, caplog):
    missing = tmp_path / "no-such-folder" / "reruns.jsonl"
    with caplog.at_level(logging.WARNING, logger="spindle.reruns"), rerun_log.timed(missing, "Image", "full"):
        pass
    assert "cannot append to the rerun log" in caplog.text


def test_read_log_skips_earlier_lines_and_a_torn_last_line(tmp_path):
    path = tmp_path / "reruns.jsonl"
    lines = [{"page": "Validation", "kind": "full", "ms": ms, "job": job}
             for ms, job in ((5.0, None), (40.0, "running"), (80.0, "running"), (120.0, "completed"),
                             (20.0, "completed"), (30.0, "completed"))]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"page": "Valid', encoding="utf-8")
    assert rerun_log.read_log(path, skip_lines=4) == lines[4:]
    read = rerun_log.read_log(path)
    running = rerun_log.summarise(rerun_log.while_running(read))
    assert (running.count, running.median_ms, running.max_ms) == (2, 60.0, 80.0)
    finished = rerun_log.summarise(rerun_log.on_finished_page(read))
    assert (finished.count, finished.median_ms, finished.max_ms) == (3, 30.0, 120.0)
    assert str(rerun_log.summarise([])) == "none"
    assert rerun_log.read_log(tmp_path / "missing.jsonl") == []


@pytest.fixture
def logged_app(tmp_path, monkeypatch):
    """The app with SPINDLE_RERUN_LOG set, as a benchmark's server has it; (AppTest on Validation, log path)."""
    from streamlit_app import widgets
    from utils.services import close_services

    path = tmp_path / "reruns.jsonl"
    monkeypatch.setenv("SPINDLE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SPINDLE_RERUN_LOG", str(path))
    widgets.get_services.clear()
    widgets._trust_setup.clear()  # the settings are read once per server: this "server" has the log set
    close_services()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/validation.py").run()
    assert not at.exception
    yield at, path
    monkeypatch.delenv("SPINDLE_RERUN_LOG")
    widgets._trust_setup.clear()
    widgets.get_services.clear()


def test_every_run_of_a_page_is_logged_with_its_jobs_state(logged_app):
    at, path = logged_app
    before_job = rerun_log.read_log(path)
    assert before_job and {(line["page"], line["kind"], line["job"]) for line in before_job} == \
        {("Validation", "full", None)}
    at.button(key="validation_sample").click().run()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception
        if any(s.value == "Download and keep" for s in at.subheader):
            break
        time.sleep(0.3)
    at.run()  # a rerun of the finished page
    lines = rerun_log.read_log(path, skip_lines=len(before_job))
    assert all(line["page"] == "Validation" and line["kind"] == "full" for line in lines)
    states = [line["job"] for line in lines]
    assert states[-2:] == ["completed", "completed"]
    assert set(states) <= {"pending", "running", "completed"}


def test_without_the_setting_the_app_writes_no_log(tmp_path, monkeypatch):
    from streamlit_app import widgets

    monkeypatch.setenv("SPINDLE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SPINDLE_RERUN_LOG", raising=False)
    widgets._trust_setup.clear()
    widgets.get_services.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert widgets.rerun_log_path() == ""
    assert not [p for p in tmp_path.rglob("*") if p.suffix == ".jsonl"]
    widgets.get_services.clear()
