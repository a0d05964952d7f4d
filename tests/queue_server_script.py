"""A Spindle server process for the several-servers tests: services + queue, no page.

Usage: queue_server_script.py <data_dir> <server_id>; DATABASE_URL and SPINDLE_LEASE_SECONDS
come from the environment. It resumes (claims) every job no live lease holds, prints
"ready", keeps its leases alive and takes over expired ones, and exits when no job in
the store is left unfinished.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.settings import load_settings  # noqa: E402
from tests import queue_workers  # noqa: E402,F401 - registers the test tasks
from utils.services import open_services  # noqa: E402

UNFINISHED = ("pending", "running")

if __name__ == "__main__":
    data_dir, server_id = sys.argv[1], sys.argv[2]
    services = open_services(load_settings({**os.environ, "SPINDLE_DATA_DIR": data_dir,
                                                "SPINDLE_SERVER_ID": server_id}))
    print("ready", flush=True)
    while True:
        left = services.store.list_jobs(statuses=list(UNFINISHED), limit=1000)
        if not left:
            break
        time.sleep(0.1)
    services.queue.flush(30)
    print("finished", flush=True)
    services.manager.shutdown(cancel_futures=True)
    services.close()
