"""The owner's own code (issue 12, part 1) runs unchanged, in a plain Python process outside Streamlit."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import load_settings
from config.threading_config import load_threading_config
from tests import queue_workers
from utils.services import open_services
from utils.task_queue import TaskFailedError
from utils.threading_manager import ThreadingManager

ROOT = Path(__file__).resolve().parents[1]


def test_the_owner_s_snippet_runs_as_written(tmp_path):
    data = tmp_path / "data"
    env = {**os.environ, "SPINDLE_DATA_DIR": str(data), "DATABASE_URL": "", "SUPABASE_URL": ""}
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "queue_owner_script.py"), str(tmp_path)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "owner api ok" in done.stdout
    assert (data / "spindle.sqlite3").exists()  # the queue was the durable one, in the configured data folder


@pytest.fixture
def services(tmp_path):
    manager = ThreadingManager(load_threading_config())
    opened = open_services(load_settings({"SPINDLE_DATA_DIR": str(tmp_path)}), manager=manager)
    yield opened
    manager.shutdown(cancel_futures=True)
    opened.close()


def _boom(reason: str) -> None:
    raise ValueError(reason)


def test_get_result_raises_the_reason_of_a_failed_task_and_batches_give_values(services):
    queue = services.queue
    failing = queue.submit(_boom, "no such customer")
    with pytest.raises(TaskFailedError, match="no such customer"):
        queue.get_result(failing, timeout=30)
    batch = queue.submit_batch(queue_workers.slow_square, [{"n": 2}, {"n": 3, "bad": True}], owner="ana", kind="test")
    assert queue.get_result(batch, timeout=30) == [{"n": 2, "square": 4}, None]
    assert [row["status"] for row in queue.item_rows(batch)] == ["completed", "failed"]


def test_a_submitted_task_s_value_survives_in_the_store_for_another_process(services, tmp_path):
    task_id = services.queue.submit(queue_workers.add, 20, 22)
    assert services.queue.get_result(task_id, timeout=30) == 42
    services.queue.flush(10)
    other = open_services(load_settings({"SPINDLE_DATA_DIR": str(tmp_path)}), manager=services.manager)
    try:
        assert other.queue.get_result(task_id, timeout=30) == 42  # read back from the stored row
    finally:
        other.close()
