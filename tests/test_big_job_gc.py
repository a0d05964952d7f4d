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
