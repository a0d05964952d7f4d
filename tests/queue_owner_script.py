"""The owner's guide, run as the owner would: a plain script, no Streamlit (used by tests/test_owner_api.py).

The block between the markers is the owner's code from issue 12, unchanged.
"""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def my_function(a, b):
    return a * b


def process_item(item):
    return item + 1


def process_file(path):
    return Path(path).read_text()


def background_function(a, b):
    time.sleep(0.05)
    return {"sum": a + b, "args": [a, b]}


if __name__ == "__main__":
    arg1, arg2 = 6, 7
    items = list(range(20))
    folder = Path(sys.argv[1])
    files = []
    for number in range(7):
        (folder / f"f{number}.txt").write_text(f"file {number}")
        files.append(str(folder / f"f{number}.txt"))

    # --- the owner's code, verbatim -------------------------------------------------------------------
    from utils.threading_manager import batch_process_files, get_async_queue, get_threading_manager, parallel_map
    manager = get_threading_manager()
    future = manager.submit_task(my_function, arg1, arg2, task_name="my_task"); result = future.result()
    results = parallel_map(process_item, items, max_workers=4)
    results = batch_process_files(process_file, files, batch_size=5)
    queue = get_async_queue()
    task_id = queue.submit(background_function, arg1, arg2)
    status = queue.get_status(task_id); result = queue.get_result(task_id)   # result: background_function's return value
    # ---------------------------------------------------------------------------------------------------

    assert future.result() == 42
    assert parallel_map(process_item, items, max_workers=4) == [n + 1 for n in items]
    assert results == [f"file {n}" for n in range(7)]
    assert status["id"] == task_id and status["status"] in ("pending", "running", "completed")
    assert result == {"sum": 13, "args": [6, 7]}, result
    assert queue.get_status(task_id)["status"] == "completed"

    from utils import services

    seen = []
    threads = [threading.Thread(target=lambda: seen.append(services.get_async_queue())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(q is queue for q in seen) and services.get_services().queue is queue  # one queue per process
    assert services.get_services().manager is manager  # and it runs on the app's manager
    print("owner api ok", flush=True)
    services.get_services().close()
    manager.shutdown(cancel_futures=True)
