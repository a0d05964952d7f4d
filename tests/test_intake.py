"""Queue intake against a real RabbitMQ: exactly-once storage, dead letters, crashes and broker restarts."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pika
import pytest

from config.settings import load_settings
from streamlit_app.analytics import load_activity
from streamlit_app.file_jobs import results_frame as file_results
from streamlit_app.intake_status import intake_status
from streamlit_app.publish import OutgoingMessage, publish, record_messages
from streamlit_app.validation.batch import SHEET_KEY
from streamlit_app.validation.batch import results_frame as validation_results
from tests.waiting import wait_until
from utils.intake import (
    KINDS,
    MAX_ATTEMPTS,
    PREFETCH_PER_WORKER,
    REASON_HEADER,
    Intake,
    KindSpec,
    start_intake,
    stop_intake,
)
from utils.services import open_services
from utils.task_registry import task
from utils.threading_manager import ThreadingManager

ROOT = Path(__file__).resolve().parent.parent


def _wait(condition, timeout: float = 30.0, message: str = "the condition did not hold in time") -> None:
    assert wait_until(condition, timeout=timeout, interval=0.05), message


@task("tests.intake.touch")
def touch(item: dict, params: dict) -> dict:
    """A tiny I/O task: note that it ran (one line per run), wait a little, return."""
    metadata = item.get("metadata") or {}
    with open(metadata["log"], "a", encoding="utf-8") as log:
        log.write(item["message_id"] + "\n")
    if metadata.get("fail") == "always" or (metadata.get("fail") == "once" and item["message_id"] not in _failed_once):
        _failed_once.add(item["message_id"])
        raise ConnectionError("the model server did not answer")
    time.sleep(float(metadata.get("sleep", 0.002)))
    return {"input": item, "result": {"ok": True}}


_failed_once: set[str] = set()
TEST_KINDS = {**KINDS, "touch": KindSpec("text", "tests.intake.touch", needs_file=False)}


@pytest.fixture()
def services(tmp_path, rabbitmq):
    settings = dataclasses.replace(load_settings(env={}), data_dir=tmp_path / "data", rabbitmq_url=rabbitmq.url,
                                   voice_processing_queue=f"q-{uuid.uuid4().hex[:8]}")
    manager = ThreadingManager()
    manager.configure("default", workers=8)
    opened = open_services(settings, manager)
    yield opened
    stop_intake()
    opened.close()
    manager.shutdown(wait=False, cancel_futures=True)


def _drain(url: str, queue: str) -> list[tuple[dict, bytes]]:
    """Every message now in the queue: (headers plus message id, body)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        out = []
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            out.append(({**(properties.headers or {}), "message_id": properties.message_id}, body))
    finally:
        connection.close()


def _stored(services, owner: str = "intake") -> dict[str, list[dict]]:
    """Stored item rows per message id, over every intake job."""
    by_message: dict[str, list[dict]] = {}
    for job in services.store.list_jobs(owner=owner, limit=100):
        for row in services.store.item_rows(job["id"]):
            by_message.setdefault(row["input"]["message_id"], []).append(row)
    return by_message


def _touch_messages(job_id: str, count: int, log: Path, **metadata) -> list[OutgoingMessage]:
    return [OutgoingMessage(f"{job_id}-{i}", {"job_id": job_id, "kind": "touch",
                                              "metadata": {"log": str(log), **metadata}}) for i in range(count)]


def test_a_thousand_messages_with_bad_ones_store_each_good_one_once_and_dead_letter_the_rest(services, rabbitmq):
    settings = services.settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "note.txt").write_text("A short note about the weather.", encoding="utf-8")
    good = record_messages("crm", [{"name": f"Person {i}", "phone": f"+1 202 555 {i % 10000:04d}",
                                    "email": f"p{i}@example.com"} for i in range(900)], "people.csv")
    bad_bodies = {
        "not JSON": b"{this is not json",
        "unknown kind": json.dumps({"job_id": "x", "kind": "video", "file": "note.txt"}).encode(),
        "missing file": json.dumps({"job_id": "x", "kind": "audio", "file": "nowhere.wav"}).encode(),
        "outside the data folder": json.dumps({"job_id": "x", "kind": "text", "file": "../../etc/passwd"}).encode(),
    }
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq.url))
    channel = connection.channel()
    channel.queue_declare(settings.voice_processing_queue, durable=True)
    bad_ids = {}
    for i in range(100):
        expected, body = list(bad_bodies.items())[i % 4]
        bad_ids[f"bad-{i}"] = expected
        channel.basic_publish("", settings.voice_processing_queue, body,
                              pika.BasicProperties(message_id=f"bad-{i}", delivery_mode=2))
    connection.close()
    publish(rabbitmq.url, settings.voice_processing_queue, good)

    intake = Intake(settings, services.manager, services.store).start()
    _wait(lambda: intake.snapshot().totals["acked"] + intake.snapshot().totals["dead_lettered"] >= 1000,
               timeout=60, message="the intake did not settle 1,000 messages")
    assert intake.stop()

    stored = _stored(services)
    assert set(stored) == {m.message_id for m in good}
    assert all(len(rows) == 1 for rows in stored.values())
    failed = [rows[0]["error"] for rows in stored.values() if rows[0]["status"] != "completed"]
    assert failed == []
    dead = _drain(rabbitmq.url, settings.voice_processing_queue + ".dead-letter")
    assert {headers["message_id"] for headers, _ in dead} == set(bad_ids)
    for headers, _ in dead:
        assert bad_ids[headers["message_id"]].split()[0] in headers[REASON_HEADER]
    [job] = services.store.list_jobs(owner="intake")
    assert (job["kind"], job["total"], job["done"], job["status"]) == ("validation", 900, 900, "completed")
    table = validation_results(services, job["id"])  # the Validation page's own table reads the job
    assert all(SHEET_KEY in rows[0]["input"] for rows in stored.values())
    assert len(table) == 900 and set(table["status"]) <= {"valid", "invalid"}
    assert list(table["row"]) == list(range(2, 902))  # in sheet order, as the producer's rows were numbered
    reasons = intake.snapshot().dead_letters
    assert len(reasons) == 50 and all(r["reason"] for r in reasons)


def test_file_messages_are_stored_once_and_analysed_like_uploads_on_the_page_and_in_analytics(services, rabbitmq):
    settings = services.settings
    (settings.data_dir / "inbox").mkdir(parents=True)
    (settings.data_dir / "inbox" / "note.txt").write_text("A short note about the weather.", encoding="utf-8")
    stored_file = services.storage.save_upload("someone", "memo.txt", b"Please call back tomorrow morning.")
    messages = [OutgoingMessage("by-path", {"job_id": "notes", "kind": "text", "file": "inbox/note.txt"}),
                OutgoingMessage("by-key", {"job_id": "notes", "kind": "text", "file": stored_file["id"]})]
    publish(rabbitmq.url, settings.voice_processing_queue, messages + messages)  # each one twice
    intake = Intake(settings, services.manager, services.store).start()
    _wait(lambda: intake.snapshot().totals["acked"] >= 4, timeout=60, message="the file messages were not settled")
    intake.stop()
    [job] = services.store.list_jobs(owner="intake")
    rows = services.store.item_rows(job["id"])
    assert sorted(row["input"]["message_id"] for row in rows) == ["by-key", "by-path"]
    assert [row["error"] for row in rows if row["status"] != "completed"] == []
    assert all(row["input"]["sha256"] and row["result"]["words"] > 0 for row in rows)
    table = file_results(services, job["id"])  # the Text page's own results table
    assert sorted(table["file"]) == ["memo.txt", "note.txt"] and set(table["status"]) == {"ok"}
    activity = load_activity(services.store, kinds=["text"])
    assert job["id"] in set(activity.jobs["id"])


def test_transient_failures_are_retried_with_a_count_then_dead_lettered_with_the_reason(services, rabbitmq, tmp_path):
    log = tmp_path / "runs.log"
    queue = services.settings.voice_processing_queue
    publish(rabbitmq.url, queue, _touch_messages("flaky", 3, log, fail="once") +
            [OutgoingMessage("hopeless", {"job_id": "flaky", "kind": "touch",
                                          "metadata": {"log": str(log), "fail": "always"}})])
    intake = Intake(services.settings, services.manager, services.store, kinds=TEST_KINDS).start()
    _wait(lambda: intake.snapshot().totals["acked"] + intake.snapshot().totals["dead_lettered"] >= 4,
               timeout=30, message="the flaky messages were not settled")
    intake.stop()
    stored = _stored(services)
    assert all(stored[f"flaky-{i}"][0]["status"] == "completed" and stored[f"flaky-{i}"][0]["attempts"] == 2
               for i in range(3))
    hopeless = stored["hopeless"][0]
    assert hopeless["status"] == "failed" and "did not answer" in hopeless["error"]
    assert hopeless["attempts"] == MAX_ATTEMPTS
    runs = log.read_text().split()
    assert runs.count("hopeless") == MAX_ATTEMPTS
    dead = _drain(rabbitmq.url, queue + ".dead-letter")
    assert [headers["message_id"] for headers, _ in dead] == ["hopeless"]
    assert "gave up after 3 attempts" in dead[0][0][REASON_HEADER]
    assert intake.snapshot().totals["requeued"] == 3 + MAX_ATTEMPTS - 1


def test_prefetch_follows_the_pool_workers_live_and_a_graceful_stop_loses_nothing(services, rabbitmq, tmp_path):
    log = tmp_path / "runs.log"
    queue = services.settings.voice_processing_queue
    services.manager.configure("default", workers=3)
    publish(rabbitmq.url, queue, _touch_messages("slow", 300, log, sleep=0.1))
    intake = Intake(services.settings, services.manager, services.store, kinds=TEST_KINDS).start()
    for workers in (3, 6):  # the Workers slider moves: the broker's prefetch for this consumer follows
        services.manager.configure("default", workers=workers)
        wanted = workers * PREFETCH_PER_WORKER
        _wait(lambda wanted=wanted: intake.snapshot().prefetch == wanted == intake.snapshot().in_flight, timeout=20)
        assert rabbitmq.ctl("list_consumers", "prefetch_count").split()[-1] == str(wanted)
    assert intake.stop()  # stops consuming, lets the messages in flight finish and be stored, closes
    done = len(_stored(services))
    assert 0 < done < 300
    assert intake.snapshot().totals["acked"] == done
    waiting = _drain(rabbitmq.url, queue)
    assert len(waiting) == 300 - done  # nothing lost, nothing left unacked


def test_a_killed_consumer_restarts_without_losing_or_repeating_work(rabbitmq, tmp_path):
    data = tmp_path / "data"
    log = tmp_path / "runs.log"
    queue = f"q-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "SPINDLE_DATA_DIR": str(data), "RABBITMQ_URL": rabbitmq.url, "VOICE_PROCESSING_QUEUE": queue,
           "MAX_THREAD_WORKERS": "8", "DATABASE_URL": "", "PYTHONPATH": str(ROOT)}
    script = ("import tests.test_intake as t, utils.intake as i; i.KINDS.update(t.TEST_KINDS); i.main()")
    publish(rabbitmq.url, queue, _touch_messages("batch", 400, log, sleep=0.01))

    def consumer() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", script], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    first = consumer()
    _wait(lambda: log.exists() and len(log.read_text().split()) >= 120, timeout=30,
               message="the consumer did not start working")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    ran_before = len(log.read_text().split())
    assert ran_before < 400
    settings = dataclasses.replace(load_settings(env={}), data_dir=data)
    second = consumer()
    try:
        from utils.store import open_store

        store = open_store(settings)
        try:
            def all_stored() -> bool:
                jobs = store.list_jobs(owner="intake")
                return bool(jobs) and sum(store.item_counts(jobs[0]["id"]).values()) >= 400
            _wait(all_stored, timeout=40, message="the restarted consumer did not finish the batch")
            rows = store.item_rows(store.list_jobs(owner="intake")[0]["id"])
        finally:
            store.close()
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    ids = [row["input"]["message_id"] for row in rows]
    assert len(ids) == 400 and set(ids) == {f"batch-{i}" for i in range(400)}
    runs = log.read_text().split()
    repeated = len(runs) - len(set(runs))
    assert repeated <= 8 * PREFETCH_PER_WORKER  # only what was in flight when the process died runs again
    assert _drain(rabbitmq.url, queue) == []


def test_the_consumer_reconnects_after_a_broker_restart_and_the_page_shows_the_gap(services, rabbitmq, tmp_path):
    log = tmp_path / "runs.log"
    queue = services.settings.voice_processing_queue
    services.manager.configure("default", workers=4)
    publish(rabbitmq.url, queue, _touch_messages("steady", 300, log, sleep=0.1))
    import utils.intake as intake_module

    intake_module.KINDS.update(TEST_KINDS)
    try:
        intake = start_intake(services.settings, services.manager, services.store)
    finally:
        intake_module.KINDS.pop("touch")
    assert intake is not None
    _wait(lambda: intake.snapshot().totals["acked"] >= 50, timeout=20)
    rabbitmq.stop()
    assert len(_stored(services)) < 300  # the broker went away mid-stream
    rabbitmq.start()
    _wait(lambda: len(_stored(services)) >= 300, timeout=40, message="the intake did not finish after the restart")
    _wait(lambda: intake.snapshot().state == "connected", timeout=20)
    stored = _stored(services)
    assert all(len(rows) == 1 for rows in stored.values())
    panel = intake_status(services)
    assert panel["enabled"] and panel["state"] == "connected" and panel["words"].startswith("Connected")
    assert len(panel["gaps"]) >= 1 and panel["gaps"][0]["to"] != "still disconnected"
    assert panel["gaps"][0]["seconds"] > 0
    assert rabbitmq.url not in str(panel)
    assert stop_intake()
    assert _drain(rabbitmq.url, queue) == []


def test_without_a_broker_url_the_intake_is_off_and_says_so(tmp_path):
    settings = dataclasses.replace(load_settings(env={}), data_dir=tmp_path, rabbitmq_url="")
    manager = ThreadingManager()
    services = open_services(settings, manager)
    try:
        panel = intake_status(services)
        assert panel["enabled"] is False
        assert "RABBITMQ_URL is not set" in panel["words"]
        with pytest.raises(ValueError, match="RABBITMQ_URL"):
            Intake(settings, manager, services.store)
    finally:
        services.close()
        manager.shutdown(wait=False, cancel_futures=True)


def test_the_publish_command_sends_sheet_rows_and_files_and_refuses_files_outside_the_data_folder(rabbitmq, tmp_path,
                                                                                                 capsys):
    from streamlit_app.publish import main as publish_main

    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    (data / "inbox" / "a.txt").write_text("hello", encoding="utf-8")
    outside = tmp_path / "b.txt"
    outside.write_text("hi", encoding="utf-8")
    sheet = tmp_path / "people.csv"
    sheet.write_text("name,phone\nAda,+1 202 555 0101\nBob,+1 202 555 0102\n", encoding="utf-8")
    settings = dataclasses.replace(load_settings(env={}), data_dir=data, rabbitmq_url=rabbitmq.url,
                                   voice_processing_queue=f"q-{uuid.uuid4().hex[:8]}")
    queue = settings.voice_processing_queue
    assert publish_main(["--job-id", "crm", "records", str(sheet)], settings) == 0
    assert publish_main(["--job-id", "docs", "files", "--kind", "text", str(data / "inbox" / "a.txt")], settings) == 0
    assert publish_main(["--job-id", "docs", "files", "--kind", "text", str(outside)], settings) == 1
    assert "outside the data folder" in capsys.readouterr().err
    assert publish_main(["--job-id", "docs", "files", "--kind", "text", "--copy", str(outside)], settings) == 0
    bodies = [json.loads(body) for _, body in _drain(rabbitmq.url, queue)]
    records = [b for b in bodies if b["kind"] == "record"]
    assert [(r["record"]["name"], r["metadata"]["row"]) for r in records] == [("Ada", 2), ("Bob", 3)]
    files = sorted(b["file"] for b in bodies if b["kind"] == "text")
    assert files[0] == "inbox/a.txt" and files[1].startswith("intake/") and (data / files[1]).is_file()
