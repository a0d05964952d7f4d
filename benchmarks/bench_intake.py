"""Queue intake: messages per second for 20 ms I/O tasks with 16 workers, against the owner's design.

The owner's design is a bare pika consumer (prefetch = workers) handing each message to a
ThreadPoolExecutor and acking from the connection thread when the task returns; nothing
is stored and a redelivery runs again. Spindle's intake runs the same task on the shared
manager, stores each result once by message id in SQLite, and acks after the commit.
Both drain the same number of messages from a real, private RabbitMQ node in one run.
"""
from __future__ import annotations

import dataclasses
import functools
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pika  # noqa: E402

from config.settings import load_settings  # noqa: E402
from streamlit_app.publish import OutgoingMessage, publish  # noqa: E402
from tests.fixtures.rabbitmq import start_rabbitmq  # noqa: E402
from utils.intake import KINDS, PREFETCH_PER_WORKER, Intake, KindSpec  # noqa: E402
from utils.services import open_services  # noqa: E402
from utils.task_registry import task  # noqa: E402
from utils.threading_manager import ThreadingManager  # noqa: E402

WORKERS = 16
TASK_S = 0.02


_peak_lock = threading.Lock()  # guards _running and _peak
_running = 0
_peak = 0


def io_work(seconds: float) -> dict:
    """A 20 ms remote call; notes how many run at once (a fair race runs at most WORKERS)."""
    global _running, _peak
    with _peak_lock:
        _running += 1
        _peak = max(_peak, _running)
    time.sleep(seconds)
    with _peak_lock:
        _running -= 1
    return {"ok": True}


def _take_peak() -> int:
    global _peak
    with _peak_lock:
        peak, _peak = _peak, 0
    return peak


@task("bench.intake.io")
def io_task(item: dict, params: dict) -> dict:
    return {"input": item, "result": io_work(float(item["metadata"]["sleep"]))}


def _messages(count: int, job_id: str) -> list[OutgoingMessage]:
    return [OutgoingMessage(f"{job_id}-{i}", {"job_id": job_id, "kind": "io", "metadata": {"sleep": TASK_S}})
            for i in range(count)]


def bare_consumer(url: str, queue: str, count: int) -> float:
    """The owner's design: BlockingConnection, prefetch = workers, ThreadPoolExecutor, ack when done."""
    started = time.perf_counter()  # from connecting, as for the intake
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=WORKERS)
    done = [0]

    def ack(tag: int) -> None:
        channel.basic_ack(tag)
        done[0] += 1

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        def on_message(ch, method, properties, body) -> None:
            future = pool.submit(io_work, TASK_S)
            future.add_done_callback(lambda _f, tag=method.delivery_tag:
                                     connection.add_callback_threadsafe(functools.partial(ack, tag)))

        channel.basic_consume(queue, on_message)
        while done[0] < count:
            connection.process_data_events(time_limit=0.05)
        seconds = time.perf_counter() - started
    connection.close()
    return seconds


def intake_consumer(url: str, queue: str, count: int, folder: str, prefetch_per_worker: int = PREFETCH_PER_WORKER
                    ) -> tuple[float, int, int]:
    """Spindle's intake on a fresh manager and SQLite store; returns (seconds, stored, stored twice)."""
    settings = dataclasses.replace(load_settings(env={}), data_dir=Path(folder), rabbitmq_url=url,
                                   voice_processing_queue=queue)
    manager = ThreadingManager()
    manager.configure("default", workers=WORKERS)
    services = open_services(settings, manager)
    kinds = {**KINDS, "io": KindSpec("text", "bench.intake.io", needs_file=False)}
    intake = Intake(settings, manager, services.store, kinds=kinds, prefetch_per_worker=prefetch_per_worker)
    started = time.perf_counter()
    intake.start()
    while intake.snapshot().totals["acked"] < count:
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    intake.stop()
    ids: list[str] = []
    for job in services.store.list_jobs(owner="intake"):
        ids += [row["input"]["message_id"] for row in services.store.item_rows(job["id"])]
    services.close()
    manager.shutdown(wait=False, cancel_futures=True)
    return seconds, len(set(ids)), len(ids) - len(set(ids))


def main(count: int = 1000, rounds: int = 3) -> dict:
    """Rounds alternate the designs, so a busy machine slows each of them alike; the median ratio counts."""
    broker = start_rabbitmq()
    rates: dict[str, list[float]] = {"bare": [], "intake": [], "intake1": []}
    peaks: dict[str, int] = {"bare": 0, "intake": 0, "intake1": 0}
    stored = twice = 0
    try:
        for round_number in range(rounds):
            queues = {name: f"bench-{name}-{round_number}-{uuid.uuid4().hex[:6]}" for name in rates}
            for name, queue in queues.items():
                publish(broker.url, queue, _messages(count, f"{name}-{round_number}"))
            rates["bare"].append(count / bare_consumer(broker.url, queues["bare"], count))
            peaks["bare"] = max(peaks["bare"], _take_peak())
            with tempfile.TemporaryDirectory() as folder:
                seconds, stored_now, twice_now = intake_consumer(broker.url, queues["intake"], count, folder)
            rates["intake"].append(count / seconds)
            peaks["intake"] = max(peaks["intake"], _take_peak())
            stored, twice = stored + stored_now, twice + twice_now
            with tempfile.TemporaryDirectory() as folder:
                seconds, _, _ = intake_consumer(broker.url, queues["intake1"], count, folder, prefetch_per_worker=1)
            rates["intake1"].append(count / seconds)
            peaks["intake1"] = max(peaks["intake1"], _take_peak())
    finally:
        broker.close()
    ratios = sorted(i / b for i, b in zip(rates["intake"], rates["bare"]))
    same_ratios = sorted(i / b for i, b in zip(rates["intake1"], rates["bare"]))
    ratio, same_ratio = ratios[len(ratios) // 2], same_ratios[len(same_ratios) // 2]
    bare_rate, intake_rate = statistics.median(rates["bare"]), statistics.median(rates["intake"])
    exactly_once = stored == count * rounds and twice == 0
    verdict = "PASS" if ratio >= 1.0 and exactly_once else "MISS"
    print(f"intake: {rounds} rounds of {count:,} messages of {TASK_S * 1000:g} ms I/O, {WORKERS} workers: Spindle's "
          f"intake (prefetch {PREFETCH_PER_WORKER} per worker) {intake_rate:,.0f} msg/s vs bare pika + "
          f"ThreadPoolExecutor (prefetch = workers) {bare_rate:,.0f} msg/s = {ratio:.2f}x median of "
          f"{', '.join(f'{r:.2f}' for r in ratios)} (goal >= 1x with exactly-once storage: {verdict}); "
          f"stored {stored:,} once, {twice} twice (the bare design stores nothing)")
    print(f"  tasks at once: intake {peaks['intake']}, bare {peaks['bare']} (the manager grows an I/O pool's "
          f"concurrency past its base size); intake with prefetch = workers as the bare design: "
          f"{statistics.median(rates['intake1']):,.0f} msg/s = {same_ratio:.2f}x, {peaks['intake1']} at once")
    return {"messages": count, "rounds": rounds, "intake_per_s": round(intake_rate, 1),
            "bare_per_s": round(bare_rate, 1), "ratio": round(ratio, 3), "stored": stored, "stored_twice": twice,
            "same_prefetch_ratio": round(same_ratio, 3), "peaks": peaks}


if __name__ == "__main__":
    main()
