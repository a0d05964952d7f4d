"""Run by the resume test in its own process: start (or resume) a durable job and wait."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.settings import load_settings  # noqa: E402
from tests import queue_workers  # noqa: E402,F401 - registers the test tasks
from utils.services import open_services  # noqa: E402

if __name__ == "__main__":
    data_dir, total = sys.argv[1], int(sys.argv[2])
    services = open_services(load_settings({"SPINDLE_DATA_DIR": data_dir}))
    job_id = services.queue.submit_batch("tests.queue_workers:slow_square", [{"n": n} for n in range(total)],
                                         owner="resume-test", kind="test", params={"delay": 0.02},
                                         exec_kind="thread", chunk_size=5, idem_key="resume-batch")
    print(job_id, flush=True)
    services.queue.wait(job_id)
    print("finished", flush=True)
    services.manager.shutdown(cancel_futures=True)
