"""While a big job runs, the garbage collector leaves the data alive at its start alone (progress polls stay fast)."""
from __future__ import annotations

import gc

from streamlit_app import widgets


def test_a_big_running_job_freezes_the_collectors_view_until_it_finishes():
    gc.unfreeze()
    big = {"status": "running", "total": widgets.BIG_JOB_ITEMS}
    widgets._hold_big_job_data_still("big-job", big)
    try:
        assert gc.get_freeze_count() > 0
        widgets._hold_big_job_data_still("big-job", {**big, "status": "completed"})
        assert gc.get_freeze_count() == 0
    finally:
        widgets._frozen_for.discard("big-job")
        gc.unfreeze()


def test_a_small_job_leaves_the_collector_as_it_is():
    gc.unfreeze()
    widgets._hold_big_job_data_still("small-job", {"status": "running", "total": 1000})
    assert gc.get_freeze_count() == 0
    assert "small-job" not in widgets._frozen_for


def test_what_a_run_imported_is_left_out_of_full_collections_and_a_run_without_imports_freezes_nothing(
        monkeypatch):
    import sys
    import types

    gc.unfreeze()
    monkeypatch.setattr(widgets, "_modules_when_frozen", 0)  # as in a fresh server
    widgets.freeze_what_imports_made()  # whatever this process imported so far
    try:
        assert gc.get_freeze_count() > 0
        gc.unfreeze()
        widgets.freeze_what_imports_made()  # no module came since: a run's own objects stay collectable
        assert gc.get_freeze_count() == 0
        sys.modules["spindle_test_fresh_module"] = types.ModuleType("spindle_test_fresh_module")  # a page's import
        widgets.freeze_what_imports_made()
        assert gc.get_freeze_count() > 0
    finally:
        sys.modules.pop("spindle_test_fresh_module", None)
        gc.unfreeze()
