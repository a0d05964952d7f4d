"""A killed server leaves no worker processes behind: its pool's workers die with it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
SERVER = """
import sys, time
sys.path.insert(0, {root!r})
from utils.process_workers import ProcessWorkers
pool = ProcessWorkers("untrusted", 2)
pool.warm()
busy, _ = pool.submit(time.sleep, 600)  # one worker in the middle of an item, one idle
while len(pool.pids()) < 2:
    time.sleep(0.01)
print(" ".join(map(str, pool.pids())), flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting for a parent to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_a_sigkilled_server_leaves_no_worker_processes() -> None:
    server = subprocess.Popen([sys.executable, "-c", SERVER.format(root=str(ROOT))], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        pids = [int(pid) for pid in server.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(30)
        assert wait_until(lambda: not any(_alive(pid) for pid in pids), timeout=30), \
            f"worker processes outlived their server: {[pid for pid in pids if _alive(pid)]}"
    finally:
        if server.poll() is None:
            server.kill()
