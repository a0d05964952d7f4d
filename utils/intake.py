"""Queue intake: producers outside the browser hand Spindle work through RabbitMQ.

Why pika's BlockingConnection in one consumer thread: pika channels are not
thread-safe, so one thread owns the connection and does every channel call
(consume, ack, publish, qos); the writer thread queues settled messages for it and
wakes it with `connection.add_callback_threadsafe`. This keeps the threaded app
free of an asyncio loop (aio-pika) and of SelectConnection's callback chains, and
a lost connection is just an exception in one loop that reconnects.

A message is JSON: {"job_id", "kind": "audio"|"image"|"text"|"record", "file" (a
storage key, i.e. a files-table id, or a path under the data folder), "metadata"};
a record message carries its fields in "record" (or metadata["record"]) instead of
a file. Each message becomes one item of a durable job (one job per producer
job_id, of the matching page's kind, owned by INTAKE_OWNER):

1. The consumer thread checks the message. A bad one (not JSON, unknown kind,
   missing file, a path outside the data folder) is published to the dead-letter
   queue with its reason and acked: the consumer never stops.
2. A message whose result is already stored (a redelivery) is acked without
   running again; a redelivery of a message still running here waits for it.
3. Otherwise it runs on the shared manager (the deliveries of one burst as one
   manager job, an item a chunk). A record runs the Validation page's
   check on the intake pool's threads. A file is first stored once by content on
   those threads (per-worker resources, the storage, are made once per worker
   thread through the pool's initializer, or lazily when the pool has another),
   then analysed by the page's own task in the "untrusted" pool's memory-capped
   worker processes, exactly as an upload is.
4. The writer thread stores outcomes in batches. An item row is inserted complete
   (input, status, result) in one transaction at an idx fixed by the message (a
   record's sheet row, else a hash of its id), probing on past other messages: idempotent by
   message id across restarts and consumers, because the insert of a message
   already stored fails. Only after the commit is the message acked.
5. A transient failure (connection, timeout, store) is republished with
   the header x-spindle-attempt + 1 and the original acked (classic durable
   queues, so no x-delivery-count); after MAX_ATTEMPTS the item is stored as
   failed with the reason and the message goes to the dead-letter queue.

Prefetch follows the pool's worker count live, PREFETCH_PER_WORKER messages per
worker (RABBITMQ_PREFETCH_COUNT > 0 fixes it): the consumer re-subscribes with the
new basic.qos, because RabbitMQ applies a consumer's prefetch only when it
subscribes. Everything the Performance page shows comes from `Intake.snapshot()`.
An item that kills its worker process fails alone (the manager finds it); it is
not retried, so a hostile file cannot take down a worker three times.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from config.settings import Settings
from utils.item_errors import ItemError
from utils.store.base import ITEM_COLUMNS, Store
from utils.task_registry import resolve_task, task

log = logging.getLogger(__name__)

INTAKE_OWNER = "intake"  # intake jobs belong to no visitor; pages list them with this owner
INTAKE_POOL = "default"  # the I/O pool (MAX_THREAD_WORKERS); its Workers slider sets the prefetch
MAX_ATTEMPTS = 3
ATTEMPT_HEADER = "x-spindle-attempt"
REASON_HEADER = "x-spindle-reason"
DEAD_LETTER_SUFFIX = ".dead-letter"
DEAD_LETTER_KEEP = 50  # latest reasons kept (in memory and in the store's cache)
CACHE_NAMESPACE = "intake"
MAX_JOB_ID_CHARS = 200
MAX_RECORD_FILE_BYTES = 1024 * 1024
IDX_SPACE = 2**31 - 1  # items.idx is a 32-bit INTEGER on PostgreSQL
TRANSIENT_ERRORS = {"TransientError", "ConnectionError", "ConnectionRefusedError", "ConnectionResetError",
                    "ConnectionAbortedError", "BrokenPipeError", "TimeoutError", "StoreError"}
PIKA_ATTEMPT_LOGGERS = ("pika.adapters.utils.connection_workflow", "pika.adapters.utils.io_services_utils",
                        "pika.adapters.blocking_connection")
HOUSEKEEPING_S = 0.5  # how often the consumer checks the pool size, the queue depth and a stop request
RECONNECT_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 5.0)
# Prefetch per worker of the pool. One message runs on each worker while one more waits, so a
# worker never idles while the previous result is committed and its ack travels to the broker
# (with exactly one per worker, as in the owner's design, every store-and-ack is a worker's idle time).
PREFETCH_PER_WORKER = 2
JOB_UPDATE_S = 0.25  # a busy job's row (counts) is rewritten at most this often

IntakeState = Literal["off", "connecting", "connected", "reconnecting", "stopping", "stopped"]
Action = Literal["ack", "retry", "dead-letter", "release"]


class BadMessage(ValueError):
    """A message that can never be processed; the text is the reason stored with it."""


@dataclass(frozen=True)
class KindSpec:
    """How one message kind runs: the page kind its jobs have, the job's task, and for files the analyser.

    File kinds run in two steps: the file is stored once by content (threads), then the page's own
    task analyses it in the "untrusted" pool's memory-capped worker processes, as an upload would be.
    Other kinds run `task` on the intake's thread pool.
    """

    job_kind: str
    task: str  # registered task name; the job row's fn
    needs_file: bool = True
    analyser: str = ""  # for file kinds: the registered analyser the page uses


FILE_TASK = "streamlit_app.file_jobs:analyse_stored_file"  # the Audio, Image and Text pages' task
RECORD_TASK = "streamlit_app.validation.batch:check_record"  # the Validation page's task
KINDS: dict[str, KindSpec] = {
    "audio": KindSpec("audio", FILE_TASK, analyser="streamlit_app.audio:analyse_audio"),
    "image": KindSpec("image", FILE_TASK, analyser="streamlit_app.image:analyse_image"),
    "text": KindSpec("text", FILE_TASK, analyser="streamlit_app.text:analyse_text"),
    "record": KindSpec("validation", RECORD_TASK, needs_file=False),
}
RECORD_FIELDS = ("name", "first_name", "last_name", "phone", "email", "address", "dob")
SHEET_KEY = "sheet"  # where the Validation page's records keep their original cells (validation.batch.SHEET_KEY)


# ---------------------------------------------------------------------------------------- worker side
@dataclass
class WorkerResources:
    """What one worker thread keeps for its whole life (the owner's thread-local model, here the storage)."""

    storage: Any
    settings: Settings


_context_lock = threading.Lock()  # guards _context
_context: tuple[Settings, Store] | None = None  # the running intake's settings and store, for worker threads
_local = threading.local()


def init_worker() -> None:
    """Pool initializer: build this worker thread's resources once, before its first item."""
    with _context_lock:
        running = _context is not None
    if running:
        worker_resources()


def worker_resources() -> WorkerResources:
    """This thread's resources, made on first use if the pool's initializer did not make them."""
    with _context_lock:
        context = _context
    if context is None:
        raise RuntimeError("the queue intake is not running in this process")
    current = getattr(_local, "resources", None)
    if current is None or current.settings is not context[0]:
        from utils.smart_storage import SmartStorage

        current = WorkerResources(SmartStorage(context[0], context[1]), context[0])
        _local.resources = current
    return current


@task("intake.store_file")
def store_intake_file(item: dict, _params: dict) -> dict:
    """Worker entry, first step of a file message: store the file under the data folder once by content.

    Returns the stored file's row in the shape the pages' file jobs use.
    """
    resources = worker_resources()
    storage = resources.storage
    source = _inside_data_dir(resources.settings.data_dir, item["source_path"])
    size = source.stat().st_size
    if size > storage.max_bytes:  # checked before a byte is read
        raise BadMessage(f"{item['name']} is {size / 1048576:.1f} MB, over the "
                         f"{resources.settings.max_upload_mb} MB limit per file (MAX_UPLOAD_MB)")
    saved = storage.save_upload(INTAKE_OWNER, item["name"], source.read_bytes())
    return {"file_id": saved["id"], "name": saved["name"], "path": saved["path"], "sha256": saved["sha256"],
            "storage": saved["storage"]}


# ---------------------------------------------------------------------------------------- messages
@dataclass(frozen=True)
class IntakeMessage:
    """A checked message: what to run and which job it belongs to."""

    job_id: str
    kind: str
    item: dict
    metadata: dict


def message_id_for(properties: Any, body: bytes) -> str:
    """The producer's message id; without one, the body's hash (the same body is then the same message)."""
    given = getattr(properties, "message_id", None)
    if given:
        return str(given)[:200]
    return "sha256:" + hashlib.sha256(body).hexdigest()[:40]


def _inside_data_dir(data_dir: Path, path: str) -> Path:
    root = Path(data_dir).resolve()
    candidate = Path(path)
    full = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if not full.is_relative_to(root):
        raise BadMessage(f"path {path!r} is outside the data folder")
    return full


def parse_message(body: bytes, settings: Settings, store: Store, kinds: dict[str, KindSpec]) -> IntakeMessage:
    """Check a message's JSON, kind and file; BadMessage says what is wrong."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadMessage(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadMessage(f"not a JSON object but a {type(data).__name__}")
    job_id = data.get("job_id")
    if not isinstance(job_id, str) or not job_id.strip() or len(job_id) > MAX_JOB_ID_CHARS:
        raise BadMessage(f"job_id must be a non-empty string of at most {MAX_JOB_ID_CHARS} characters")
    kind = data.get("kind")
    if kind not in kinds:
        raise BadMessage(f"unknown kind {kind!r}; known kinds: {', '.join(sorted(kinds))}")
    metadata = data.get("metadata") if data.get("metadata") is not None else {}
    if not isinstance(metadata, dict):
        raise BadMessage("metadata must be a JSON object")
    spec = kinds[kind]
    file = data.get("file")
    if spec.needs_file:
        if not isinstance(file, str) or not file.strip():
            raise BadMessage(f"a {kind} message needs \"file\": a storage key or a path under the data folder")
        item = _file_item(file, settings, store)
    elif kind == "record":
        item = _record_item(data, metadata, file, settings)
    else:
        item = {"metadata": metadata}
    return IntakeMessage(job_id.strip(), kind, item, metadata)


def _file_item(file: str, settings: Settings, store: Store) -> dict:
    from utils.smart_storage import sanitize_name

    stored = store.get_file(file) if len(file) <= 64 and file.isalnum() else None
    if stored is not None:
        return {"file_id": stored["id"], "name": stored["name"], "path": stored["path"], "sha256": stored["sha256"],
                "storage": stored["storage"]}
    full = _inside_data_dir(settings.data_dir, file)
    if not full.is_file():
        raise BadMessage(f"missing file: {file!r} is neither a stored file's key nor a file under the data folder")
    relative = full.relative_to(Path(settings.data_dir).resolve()).as_posix()
    return {"name": sanitize_name(full.name), "source_path": relative}


def _record_item(data: dict, metadata: dict, file: Any, settings: Settings) -> dict:
    record = data.get("record", metadata.get("record"))
    if record is None and isinstance(file, str) and file.strip():
        full = _inside_data_dir(settings.data_dir, file)
        if not full.is_file():
            raise BadMessage(f"missing file: {file!r} is not a file under the data folder")
        if full.stat().st_size > MAX_RECORD_FILE_BYTES:
            raise BadMessage(f"{file!r} is over {MAX_RECORD_FILE_BYTES // 1024} KB, too large for one record")
        try:
            record = json.loads(full.read_bytes())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadMessage(f"{file!r} is not a JSON record: {exc}") from None
    if not isinstance(record, dict):
        raise BadMessage("a record message needs \"record\": a JSON object of fields (name, phone, email, address)")
    item: dict[str, Any] = {role: "" if record.get(role) is None else str(record.get(role)).strip()
                            for role in RECORD_FIELDS}
    if not item["name"] and (item["first_name"] or item["last_name"]):
        item["name"] = f"{item['first_name']} {item['last_name']}".strip()
    row = metadata.get("row")
    if isinstance(row, int) and not isinstance(row, bool):
        item["row"] = row
    item[SHEET_KEY] = {str(key): "" if value is None else str(value) for key, value in record.items()}
    return item


def job_params(spec: KindSpec, settings: Settings, queue_name: str) -> dict:
    """The job's params, shaped like the page's own jobs so its results table reads them."""
    if spec.job_kind == "validation":
        return {"options": {"default_region": settings.default_region}, "source": f"queue {queue_name}",
                "mapping": {role: role for role in RECORD_FIELDS}, "columns": [], "intake": True}
    if spec.needs_file:
        return {"analyser": spec.analyser, "options": {}, "data_dir": str(settings.data_dir), "intake": True}
    return {"intake": True}


def item_idx(message_id: str, probe: int = 0, preferred: int | None = None) -> int:
    """Where a message's item lives in its job, the same on every delivery: its preferred place (a record's
    sheet row, so the page lists records in sheet order), else a hash of its id; probing on past other messages."""
    if preferred is not None and 0 <= preferred < IDX_SPACE:
        if probe == 0:
            return preferred
        probe -= 1
    digest = int.from_bytes(hashlib.sha256(message_id.encode()).digest()[:8], "big")
    return (digest + probe) % IDX_SPACE


# ---------------------------------------------------------------------------------------- state
@dataclass
class JobRef:
    """One producer job and its durable Spindle job."""

    job_id: str  # Spindle's id
    external_id: str  # the producer's job_id
    kind: str
    spec: KindSpec
    params: dict
    by_message: dict[str, int] = field(default_factory=dict)  # message id -> idx of its stored item
    by_idx: dict[int, str] = field(default_factory=dict)
    in_flight: int = 0
    updated: float = 0.0  # monotonic time of the last job-row update


@dataclass
class Delivery:
    """One delivered message, from the consumer thread to a worker, the writer and back."""

    tag: int
    generation: int  # which channel delivered it: a tag means nothing on another channel
    message_id: str
    body: bytes
    headers: dict
    attempt: int
    job: JobRef | None = None
    item: dict | None = None
    started: float = 0.0


@dataclass
class Outcome:
    delivery: Delivery
    action: Action
    reason: str = ""
    row: dict | None = None  # the item row to store before the action (None: nothing to store)


@dataclass(frozen=True)
class IntakeSnapshot:
    """What the Performance page shows about the intake, as plain values."""

    state: IntakeState
    words: str
    queue: str
    dead_letter_queue: str
    depth: int | None
    dead_letter_depth: int | None
    consumers: int | None
    prefetch: int
    in_flight: int
    pool: str
    workers: int
    acked_per_s: float
    requeued_per_s: float
    dead_lettered_per_s: float
    totals: dict[str, int]
    gaps: list[dict]
    dead_letters: list[dict]
    last_error: str


# ---------------------------------------------------------------------------------------- the intake
class Intake:
    """Consumes the queue in one thread, runs messages on the manager, stores and acks in another."""

    def __init__(self, settings: Settings, manager: Any, store: Store, *, queue_name: str | None = None,
                 pool: str = INTAKE_POOL, kinds: dict[str, KindSpec] | None = None,
                 max_attempts: int = MAX_ATTEMPTS, prefetch_per_worker: int = PREFETCH_PER_WORKER) -> None:
        if not settings.rabbitmq_url:
            raise ValueError("RABBITMQ_URL is not set: the queue intake is off")
        self.settings = settings
        self.manager = manager
        self.store = store
        self.queue_name = queue_name or settings.voice_processing_queue
        self.dead_letter_queue = self.queue_name + DEAD_LETTER_SUFFIX
        self.pool = pool
        self.kinds = dict(KINDS if kinds is None else kinds)
        self.max_attempts = max_attempts
        self.prefetch_per_worker = max(1, prefetch_per_worker)
        self._lock = threading.Lock()  # guards the counters, gaps, dead letters, in-flight maps and jobs below
        self._state: IntakeState = "stopped"
        self._totals: collections.Counter[str] = collections.Counter()
        self._samples: collections.deque[tuple[float, int, int, int]] = collections.deque(maxlen=120)
        self._gaps: list[dict] = []
        self._dead_letters: collections.deque[dict] = collections.deque(maxlen=DEAD_LETTER_KEEP)
        self._last_error = ""
        self._depth: int | None = None
        self._dead_depth: int | None = None
        self._consumers: int | None = None
        self._prefetch = 0
        self._jobs: dict[str, JobRef] = {}
        self._running: dict[str, Delivery] = {}  # message id -> the delivery being run
        self._waiting: dict[str, list[Delivery]] = {}  # message id -> redeliveries waiting for that run
        self._in_flight = 0
        self._outcomes: queue.SimpleQueue[Outcome | None] = queue.SimpleQueue()  # workers -> writer
        self._to_settle: queue.SimpleQueue[Outcome] = queue.SimpleQueue()  # writer -> consumer thread
        self._ready: list[Delivery] = []  # checked deliveries of the current burst (consumer thread only)
        self._stop = threading.Event()
        self._generation = 0
        self._connection: Any = None
        self._channel: Any = None
        self._consumer_tag: str | None = None
        self._consumer_thread: threading.Thread | None = None
        self._writer_thread: threading.Thread | None = None
        cached = None
        try:
            cached = store.cache_get(CACHE_NAMESPACE, self._dead_letter_key)
        except Exception:  # noqa: BLE001 - an unreadable cache only loses old reasons
            log.warning("could not read the intake's stored dead-letter reasons")
        for entry in (cached or [])[-DEAD_LETTER_KEEP:]:
            self._dead_letters.append(entry)

    @property
    def _dead_letter_key(self) -> str:
        return f"dead-letters:{self.queue_name}"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Intake:
        global _context
        for name in PIKA_ATTEMPT_LOGGERS:  # they log every failed attempt as an error; _lost says it once a gap
            logging.getLogger(name).setLevel(logging.CRITICAL)
        for spec in self.kinds.values():  # fail now on an unknown task; loads the task modules in one thread
            resolve_task(spec.task)
        with _context_lock:
            _context = (self.settings, self.store)
        try:  # threads started from now on make their resources before their first item
            if self.manager.pool_settings(self.pool).get("initializer") in (None, init_worker):
                self.manager.configure(self.pool, initializer=init_worker)
        except TypeError:  # a manager without initializers: worker_resources() makes them lazily
            pass
        self._stop.clear()
        self._set_state("connecting")
        self._writer_thread = threading.Thread(target=self._write_loop, name="spindle-intake-writer", daemon=True)
        self._writer_thread.start()
        self._consumer_thread = threading.Thread(target=self._consume_loop, name="spindle-intake", daemon=True)
        self._consumer_thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop consuming, let in-flight messages finish and be stored (or requeue them), then close.

        True when everything in flight was settled within the timeout.
        """
        self._stop.set()
        self._set_state("stopping")
        thread = self._consumer_thread
        if thread is not None:
            thread.join(timeout)
        self._outcomes.put(None)
        if self._writer_thread is not None:
            self._writer_thread.join(5.0)
        with self._lock:
            settled = self._in_flight <= 0 and (thread is None or not thread.is_alive())
        self._set_state("stopped")
        return settled

    @property
    def state(self) -> IntakeState:
        with self._lock:
            return self._state

    def _set_state(self, state: IntakeState) -> None:
        with self._lock:
            self._state = state

    # ------------------------------------------------------------------ consumer thread
    def _consume_loop(self) -> None:
        import pika
        import pika.exceptions

        failures = 0
        while not self._stop.is_set():
            try:
                self._connect(pika)
                failures = 0
                self._serve()
            except (pika.exceptions.AMQPError, OSError) as exc:
                self._lost(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
                delay = RECONNECT_DELAYS_S[min(failures, len(RECONNECT_DELAYS_S) - 1)]
                failures += 1
                self._pause(delay)
            except Exception as exc:  # noqa: BLE001 - the consumer never stops on a surprise
                log.exception("queue intake error")
                self._lost(f"{type(exc).__name__}: {exc}")
                self._pause(1.0)
        self._close()
        self._settle_queued()

    def _pause(self, seconds: float) -> None:
        """Wait before reconnecting, still settling finished work (its deliveries will come again)."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            self._settle_queued()
            self._stop.wait(0.05)

    def _connect(self, pika: Any) -> None:
        parameters = pika.URLParameters(self.settings.rabbitmq_url)
        parameters.heartbeat = 30
        parameters.blocked_connection_timeout = 30
        parameters.connection_attempts = 1
        parameters.socket_timeout = 5
        connection = pika.BlockingConnection(parameters)
        channel = connection.channel()
        channel.confirm_delivery()  # retries and dead letters are published for sure before the ack
        channel.queue_declare(self.queue_name, durable=True)
        channel.queue_declare(self.dead_letter_queue, durable=True)
        with self._lock:
            self._generation += 1
            self._connection, self._channel = connection, channel
            self._state = "connected"
            self._last_error = ""
            if self._gaps and self._gaps[-1]["end"] is None:
                self._gaps[-1]["end"] = time.time()
        self._prefetch = 0
        self._subscribe()

    def _wanted_prefetch(self) -> int:
        if self.settings.rabbitmq_prefetch_count > 0:
            return self.settings.rabbitmq_prefetch_count
        workers = max(1, int(self.manager.pool_settings(self.pool)["workers"]))
        return workers * self.prefetch_per_worker

    def _subscribe(self) -> None:
        """(Re)subscribe with the prefetch the pool's size asks for; unacked messages stay ours."""
        wanted = self._wanted_prefetch()
        channel = self._channel
        if self._consumer_tag is not None and wanted == self._prefetch:
            return
        pending = channel.basic_cancel(self._consumer_tag) if self._consumer_tag is not None else []
        channel.basic_qos(prefetch_count=wanted)
        self._consumer_tag = channel.basic_consume(self.queue_name, self._on_message)
        self._prefetch = wanted
        for _channel, method, properties, body in pending or []:  # delivered before the cancel: ours to run
            self._on_message(channel, method, properties, body)

    def _serve(self) -> None:
        last = 0.0
        while not self._stop.is_set():
            self._connection.process_data_events(time_limit=HOUSEKEEPING_S)
            self._settle_queued()
            self._hand_over()
            now = time.monotonic()
            if now - last >= HOUSEKEEPING_S:
                last = now
                self._subscribe()
                self._hand_over()  # deliveries a re-subscription handed back
                self._sample_queue()
                self._sample_rates()
        self._drain_and_close()

    def _sample_queue(self) -> None:
        main = self._channel.queue_declare(self.queue_name, durable=True, passive=True)
        dead = self._channel.queue_declare(self.dead_letter_queue, durable=True, passive=True)
        with self._lock:
            self._depth = main.method.message_count
            self._consumers = main.method.consumer_count
            self._dead_depth = dead.method.message_count

    def _sample_rates(self) -> None:
        with self._lock:
            self._samples.append((time.monotonic(), self._totals["acked"], self._totals["requeued"],
                                  self._totals["dead_lettered"]))

    def _lost(self, reason: str) -> None:
        """The connection broke: note the gap; deliveries on the old channel will come again."""
        with self._lock:
            new_gap = self._state == "connected" or not self._gaps or self._gaps[-1]["end"] is not None
            if new_gap:
                self._gaps.append({"start": time.time(), "end": None, "reason": reason})
            self._state = "reconnecting"
            self._last_error = reason
            self._connection = self._channel = None
            self._consumer_tag = None
            self._depth = self._consumers = self._dead_depth = None
        if new_gap:  # once a gap: each failed attempt is not news
            log.warning("queue intake cannot reach the broker (%s); reconnecting by itself", reason)

    def _drain_and_close(self) -> None:
        """Graceful stop: no new deliveries; wait for the ones in flight to be stored and acked."""
        channel = self._channel
        if self._consumer_tag is not None:
            pending = channel.basic_cancel(self._consumer_tag)  # deliveries already run stay ours until settled
            self._consumer_tag = None
            for _channel, method, _properties, _body in pending or []:  # not started: straight back to the queue
                channel.basic_nack(method.delivery_tag, requeue=True)
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:
            with self._lock:
                busy = self._in_flight
            if not busy:
                break
            self._connection.process_data_events(time_limit=0.05)
            self._settle_queued()
            self._hand_over()
        # Anything still unsettled goes back to the queue when the channel closes (nothing is lost).

    def _close(self) -> None:
        connection = self._connection
        self._connection = self._channel = None
        self._consumer_tag = None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail; it is gone either way
                pass

    def _on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        headers = dict(getattr(properties, "headers", None) or {})
        attempt = int(headers.get(ATTEMPT_HEADER, 1) or 1)
        delivery = Delivery(method.delivery_tag, self._generation, message_id_for(properties, body), body, headers,
                            attempt)
        with self._lock:
            self._in_flight += 1
        try:
            message = parse_message(body, self.settings, self.store, self.kinds)
            job = self._job_for(message)
        except BadMessage as exc:
            self._settle(Outcome(delivery, "dead-letter", str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - the store is unreachable: the message goes back, unharmed
            log.warning("queue intake could not check a message (%s: %s); it goes back to the queue",
                        type(exc).__name__, exc)
            with self._lock:
                self._last_error = f"store: {type(exc).__name__}"
            self._stop.wait(0.5)
            self._settle(Outcome(delivery, "release", str(exc)))
            return
        delivery.job, delivery.item = job, {**message.item, "message_id": delivery.message_id}
        self._accept(delivery)

    def _accept(self, delivery: Delivery) -> None:
        """Run a checked delivery, unless its result is stored (ack it) or it is running already (wait)."""
        job = delivery.job
        assert job is not None
        with self._lock:
            stored = delivery.message_id in job.by_message
            running = self._running.get(delivery.message_id)
            if running is not None:  # a redelivery after a reconnect: the first run's result will settle it
                self._waiting.setdefault(delivery.message_id, []).append(delivery)
                return
            if not stored:
                self._running[delivery.message_id] = delivery
                job.in_flight += 1
        if stored:
            self._count("duplicates")
            self._settle(Outcome(delivery, "ack"))
            return
        if delivery.attempt > self.max_attempts:
            self._outcomes.put(self._failed(delivery, f"gave up after {self.max_attempts} attempts", "dead-letter"))
            return
        self._run(delivery)

    def _job_for(self, message: IntakeMessage) -> JobRef:
        """The durable job for a producer's job_id: found, or created on its first message."""
        with self._lock:
            ref = self._jobs.get(message.job_id)
        spec = self.kinds[message.kind]
        if ref is None:
            key = f"intake:{message.job_id}"
            job_id = "q" + hashlib.sha256(key.encode()).hexdigest()[:15]
            params = job_params(spec, self.settings, self.queue_name)
            self.store.create_job({"id": job_id, "owner": INTAKE_OWNER, "kind": spec.job_kind, "fn": spec.task,
                                   "params": params, "status": "running", "total": 0, "idem_key": key,
                                   "started_at": time.time()})
            record = self.store.get_job(job_id)
            if record is None:
                raise BadMessage(f"job {message.job_id!r} could not be created")
            ref = JobRef(job_id, message.job_id, message.kind, spec, record.get("params") or params)
            for row in self.store.item_rows(job_id):
                message_id = (row.get("input") or {}).get("message_id")
                if message_id:
                    ref.by_message[message_id] = row["idx"]
                    ref.by_idx[row["idx"]] = message_id
            with self._lock:
                ref = self._jobs.setdefault(message.job_id, ref)
        if ref.kind != message.kind:
            raise BadMessage(f"job {message.job_id!r} takes {ref.kind} messages, not {message.kind}")
        return ref

    def _run(self, delivery: Delivery) -> None:
        """Queue the message for the manager; the consumer hands over each burst of deliveries at once."""
        delivery.started = time.monotonic()
        self._ready.append(delivery)

    def _hand_over(self) -> None:
        """One manager job per step for the deliveries of a burst: a record runs its task on threads;
        a file is stored first (threads), then analysed (untrusted pool)."""
        ready, self._ready = self._ready, []
        steps: dict[tuple[str, str], list[Delivery]] = collections.defaultdict(list)
        for delivery in ready:
            job = delivery.job
            assert job is not None and delivery.item is not None
            if not job.spec.needs_file:
                steps[("task", job.spec.task)].append(delivery)
            elif delivery.item.get("file_id"):
                steps[("analyse", job.spec.task)].append(delivery)
            else:
                steps[("store", "")].append(delivery)
        for (step, name), deliveries in steps.items():
            try:
                if step == "task":
                    self._map(deliveries, resolve_task(name), self.pool, "thread", self._finish_run)
                elif step == "analyse":
                    self._analyse(deliveries)
                else:
                    self._map(deliveries, store_intake_file, self.pool, "thread", self._after_store)
            except Exception as exc:  # noqa: BLE001 - e.g. a task no longer registered: the items fail with the reason
                for delivery in deliveries:
                    self._outcomes.put(self._failed(delivery, f"{type(exc).__name__}: {exc}", "ack"))

    def _map(self, deliveries: list[Delivery], fn: Callable, pool: str, kind: str,
             then: Callable[[Delivery, Any, float], None]) -> None:
        """Run fn(item, the job's params) for each delivery as one manager job, one item a chunk."""
        def on_chunk(_job: Any, delivered: list) -> None:
            for position, value, _attempts, seconds in delivered:
                delivery = deliveries[position]
                try:
                    then(delivery, value, seconds)
                except Exception as exc:  # noqa: BLE001 - never leave a message in flight: it fails with the reason
                    log.exception("queue intake step failed for %s", delivery.message_id)
                    self._outcomes.put(self._failed(delivery, f"{type(exc).__name__}: {exc}", "ack", seconds))

        items = [(fn, d.item, d.job.params if fn is not store_intake_file and d.job else {}) for d in deliveries]
        try:
            self.manager.map(_call_task, items, kind=kind, pool=pool, chunk_size=1, name="intake",
                             on_chunk=on_chunk)
        except RuntimeError as exc:  # the manager is shutting down: give the messages back
            for delivery in deliveries:
                self._outcomes.put(Outcome(delivery, "release", str(exc)))

    def _after_store(self, delivery: Delivery, value: Any, seconds: float) -> None:
        if isinstance(value, ItemError):
            self._finish_run(delivery, value, seconds)
            return
        delivery.item = {**value, "message_id": delivery.message_id}
        self._analyse([delivery])

    def _analyse(self, deliveries: list[Delivery]) -> None:
        from utils.decode_guard import UNTRUSTED_POOL

        job = deliveries[0].job
        assert job is not None
        self._map(deliveries, resolve_task(job.spec.task), UNTRUSTED_POOL, "process", self._finish_run)

    def _finish_run(self, delivery: Delivery, value: Any, seconds: float) -> None:
        self._outcomes.put(self._outcome_for(delivery, value, seconds))

    def _outcome_for(self, delivery: Delivery, value: Any, seconds: float) -> Outcome:
        if isinstance(value, ItemError):
            reason = f"{value.error_type}: {value.message}"
            if value.error_type == "Cancelled":
                return Outcome(delivery, "release", reason)
            if value.error_type in TRANSIENT_ERRORS:
                if delivery.attempt >= self.max_attempts:
                    return self._failed(delivery, f"{reason} (gave up after {delivery.attempt} attempts)",
                                        "dead-letter", seconds)
                return Outcome(delivery, "retry", reason)
            return self._failed(delivery, reason, "ack", seconds)
        item = dict(delivery.item or {})
        item.pop("source_path", None)
        return Outcome(delivery, "ack", row=self._row(delivery, item, "completed", value, None, seconds))

    def _failed(self, delivery: Delivery, reason: str, action: Action, seconds: float = 0.0) -> Outcome:
        item = dict(delivery.item or {})
        item.pop("source_path", None)
        return Outcome(delivery, action, reason, self._row(delivery, item, "failed", None, reason, seconds))

    def _row(self, delivery: Delivery, item: dict, status: str, result: Any, error: str | None,
             seconds: float) -> dict:
        return {"job_id": delivery.job.job_id if delivery.job else "", "idx": -1, "input": item, "status": status,
                "attempts": delivery.attempt, "result": result, "error": error, "duration_ms": seconds * 1000.0,
                "updated_at": time.time()}

    # ------------------------------------------------------------------ writer thread
    def _write_loop(self) -> None:
        """Store finished items in batches (one transaction per job), then hand the acks to the consumer."""
        while True:
            first = self._outcomes.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < 500:
                try:
                    more = self._outcomes.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._outcomes.put(None)
                    break
                batch.append(more)
            self._write(batch)

    def _write(self, batch: list[Outcome]) -> None:
        by_job: dict[str, list[Outcome]] = collections.defaultdict(list)
        settled: list[Outcome] = []
        for outcome in batch:
            if outcome.row is None or outcome.delivery.job is None:
                settled.append(outcome)
            else:
                by_job[outcome.delivery.job.job_id].append(outcome)
        with self._lock:  # the job's runs are over (stored, or going back to the queue)
            for outcome in batch:
                delivery = outcome.delivery
                if delivery.job is not None and self._running.get(delivery.message_id) is delivery:
                    delivery.job.in_flight -= 1
        for outcomes in by_job.values():
            job = outcomes[0].delivery.job
            assert job is not None
            try:
                self._store_rows(job, outcomes)
            except Exception as exc:  # noqa: BLE001 - the store is down: the messages go back, nothing is acked
                log.warning("queue intake could not store %d results (%s); they will be redelivered",
                            len(outcomes), exc)
                with self._lock:
                    self._last_error = f"store: {type(exc).__name__}"
                time.sleep(0.5)
                settled.extend(dataclasses.replace(o, action="release", row=None) for o in outcomes)
                continue
            settled.extend(outcomes)
            self._update_job(job)
        for outcome in settled:
            self._settle(outcome)
        self._wake_consumer()

    def _store_rows(self, job: JobRef, outcomes: list[Outcome]) -> None:
        """Insert each outcome's row at its message's idx; a message already stored is a duplicate."""
        fresh: list[Outcome] = []
        with self._lock:
            claimed = set(job.by_idx)
            for outcome in outcomes:
                message_id = outcome.delivery.message_id
                if message_id in job.by_message or any(o.delivery.message_id == message_id for o in fresh):
                    outcome.row, outcome.action = None, "ack"  # stored already: just ack
                    continue
                outcome.row["idx"] = self._free_idx(outcome.delivery, claimed)  # type: ignore[index]
                claimed.add(outcome.row["idx"])  # type: ignore[index]
                fresh.append(outcome)
        if not fresh:
            return
        try:
            self.store.insert_rows("items", [_item_row(o.row) for o in fresh])  # type: ignore[arg-type]
            self._remember(job, fresh)
            return
        except Exception:  # noqa: BLE001 - a clash (another consumer, a restart) or the store is down
            pass
        for outcome in fresh:  # one by one, re-reading what the store holds
            for _ in range(5):
                self._reload_index(job)
                with self._lock:
                    if outcome.delivery.message_id in job.by_message:
                        outcome.row, outcome.action = None, "ack"
                        break
                    outcome.row["idx"] = self._free_idx(outcome.delivery, set(job.by_idx))  # type: ignore[index]
                try:
                    self.store.insert_rows("items", [_item_row(outcome.row)])  # type: ignore[arg-type]
                    self._remember(job, [outcome])
                    break
                except Exception:  # noqa: BLE001 - lost a race for that idx: look again
                    continue
            else:
                raise RuntimeError(f"could not store message {outcome.delivery.message_id!r}")

    @staticmethod
    def _free_idx(delivery: Delivery, claimed: set[int]) -> int:
        row = (delivery.item or {}).get("row")
        preferred = row - 2 if isinstance(row, int) and not isinstance(row, bool) else None  # row 2 is idx 0
        probe = 0
        while item_idx(delivery.message_id, probe, preferred) in claimed:
            probe += 1
        return item_idx(delivery.message_id, probe, preferred)

    def _remember(self, job: JobRef, outcomes: list[Outcome]) -> None:
        with self._lock:
            for outcome in outcomes:
                idx = outcome.row["idx"]  # type: ignore[index]
                job.by_message[outcome.delivery.message_id] = idx
                job.by_idx[idx] = outcome.delivery.message_id
        self._count("stored", len(outcomes))

    def _reload_index(self, job: JobRef) -> None:
        rows = self.store.item_rows(job.job_id)
        with self._lock:
            for row in rows:
                message_id = (row.get("input") or {}).get("message_id")
                if message_id:
                    job.by_message[message_id] = row["idx"]
                    job.by_idx[row["idx"]] = message_id

    def _update_job(self, job: JobRef) -> None:
        """The job row's counts and status: at most a few times a second while busy, always when it goes idle."""
        with self._lock:
            busy = job.in_flight > 0
        now = time.monotonic()
        if busy and now - job.updated < JOB_UPDATE_S:
            return
        job.updated = now
        try:
            counts = self.store.item_counts(job.job_id)
            finished = sum(counts.values()) - counts.get("pending", 0)
            failed = counts.get("failed", 0) + counts.get("cancelled", 0)
            fields: dict[str, Any] = {"total": sum(counts.values()), "done": finished, "failed": failed,
                                      "status": "running" if busy else "completed", "backend_used": "thread"}
            if not busy:
                fields["finished_at"] = time.time()
            self.store.update_job(job.job_id, **fields)
        except Exception:  # noqa: BLE001 - counts catch up on the next batch
            log.warning("could not update intake job %s", job.job_id)

    # ------------------------------------------------------------------ settling (consumer thread)
    def _settle(self, outcome: Outcome) -> None:
        """Ack, retry, dead-letter or release, on the consumer thread (pika is not thread-safe)."""
        if threading.current_thread() is self._consumer_thread:
            self._settle_here(outcome)
        else:
            self._to_settle.put(outcome)

    def _wake_consumer(self) -> None:
        """Have the consumer thread settle what the writer queued, now rather than at its next round."""
        with self._lock:
            connection = self._connection
        if connection is not None:
            try:
                connection.add_callback_threadsafe(self._settle_queued)
            except Exception:  # noqa: BLE001 - closed meanwhile: the consumer settles them on its next round
                pass

    def _settle_queued(self) -> None:
        while True:
            try:
                outcome = self._to_settle.get_nowait()
            except queue.Empty:
                return
            self._settle_here(outcome)

    def _settle_here(self, outcome: Outcome) -> None:
        delivery = outcome.delivery
        waiting = self._forget(delivery)
        channel = self._channel
        if channel is None or not channel.is_open:
            return
        try:
            if delivery.generation == self._generation:
                self._act(channel, outcome)
            for other in waiting:  # redeliveries of the same message: acked if it is stored now, else run
                if other.generation == self._generation:
                    with self._lock:
                        self._in_flight += 1  # _forget released it with the first delivery
                    self._accept(other)
        except Exception as exc:  # noqa: BLE001 - the channel broke: the loop reconnects, the broker redelivers
            log.warning("queue intake could not settle a message: %s", exc)

    def _act(self, channel: Any, outcome: Outcome) -> None:
        delivery = outcome.delivery
        if outcome.action == "ack":
            channel.basic_ack(delivery.tag)
            self._count("acked")
        elif outcome.action == "retry":
            headers = {**delivery.headers, ATTEMPT_HEADER: delivery.attempt + 1, REASON_HEADER: outcome.reason[:500]}
            self._publish(channel, self.queue_name, delivery, headers)
            channel.basic_ack(delivery.tag)
            self._count("requeued")
        elif outcome.action == "dead-letter":
            headers = {**delivery.headers, ATTEMPT_HEADER: delivery.attempt, REASON_HEADER: outcome.reason[:500]}
            self._publish(channel, self.dead_letter_queue, delivery, headers)
            channel.basic_ack(delivery.tag)
            self._count("dead_lettered")
            self._note_dead_letter(delivery, outcome.reason)
        else:  # release: back to the queue as it was, no attempt counted
            channel.basic_nack(delivery.tag, requeue=True)
            self._count("released")

    def _publish(self, channel: Any, queue_name: str, delivery: Delivery, headers: dict) -> None:
        import pika

        properties = pika.BasicProperties(message_id=delivery.message_id, delivery_mode=2,
                                          content_type="application/json", headers=headers)
        channel.basic_publish("", queue_name, delivery.body, properties=properties)

    def _forget(self, delivery: Delivery) -> list[Delivery]:
        """The delivery is settled (or can no longer be): free its slot; returns redeliveries that waited."""
        with self._lock:
            self._in_flight -= 1
            waiting: list[Delivery] = []
            if self._running.get(delivery.message_id) is delivery:
                del self._running[delivery.message_id]
                waiting = self._waiting.pop(delivery.message_id, [])
                self._in_flight -= len(waiting)
            return waiting

    def _note_dead_letter(self, delivery: Delivery, reason: str) -> None:
        entry = {"at": time.time(), "message_id": delivery.message_id, "reason": reason,
                 "job_id": delivery.job.external_id if delivery.job else ""}
        with self._lock:
            self._dead_letters.append(entry)
            latest = list(self._dead_letters)
        try:
            self.store.cache_put(CACHE_NAMESPACE, self._dead_letter_key, latest)
        except Exception:  # noqa: BLE001 - the reason is also in the message's header in the dead-letter queue
            log.warning("could not store the dead-letter reason for %s", delivery.message_id)

    def _count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._totals[name] += amount

    # ------------------------------------------------------------------ reading
    def snapshot(self) -> IntakeSnapshot:
        with self._lock:
            state = self._state
            totals = dict(self._totals)
            samples = list(self._samples)
            gaps = [dict(g) for g in self._gaps]
            dead = list(self._dead_letters)[::-1]
            depth, dead_depth, consumers = self._depth, self._dead_depth, self._consumers
            in_flight, error, prefetch = self._in_flight, self._last_error, self._prefetch
        rates = _rates(samples)
        try:
            workers = int(self.manager.pool_settings(self.pool)["workers"])
        except Exception:  # noqa: BLE001 - a pool name the manager no longer knows
            workers = 0
        return IntakeSnapshot(state, _words(state, self.queue_name, error), self.queue_name, self.dead_letter_queue,
                              depth, dead_depth, consumers, prefetch, max(0, in_flight), self.pool, workers,
                              rates[0], rates[1], rates[2],
                              {k: totals.get(k, 0) for k in ("acked", "requeued", "dead_lettered", "stored",
                                                             "duplicates", "released")},
                              gaps, dead, error)


def _call_task(call: tuple[Callable, dict, dict]) -> Any:
    fn, item, params = call
    return fn(item, params)


def _item_row(row: dict) -> dict:
    return {column: row[column] for column in ITEM_COLUMNS}


def _rates(samples: list[tuple[float, int, int, int]], window_s: float = 5.0) -> tuple[float, float, float]:
    """Per-second rates over the last few seconds of samples."""
    if len(samples) < 2:
        return 0.0, 0.0, 0.0
    last = samples[-1]
    first = next((s for s in samples if last[0] - s[0] <= window_s), samples[0])
    if first is last:
        first = samples[-2]
    span = last[0] - first[0]
    if span <= 0:
        return 0.0, 0.0, 0.0
    return tuple((last[i] - first[i]) / span for i in (1, 2, 3))  # type: ignore[return-value]


def _words(state: IntakeState, queue_name: str, error: str) -> str:
    if state == "connected":
        return f"Connected: taking jobs from the queue “{queue_name}”."
    if state == "connecting":
        return f"Connecting to the broker for the queue “{queue_name}”…"
    if state == "reconnecting":
        return "Not connected: the broker cannot be reached; trying again by itself."
    if state == "stopping":
        return "Stopping: finishing the messages in flight."
    if state == "off":
        return "Off: RABBITMQ_URL is not set, so no jobs come from a queue."
    return "Stopped: no jobs are taken from the queue."


# ---------------------------------------------------------------------------------------- one per process
_running_lock = threading.Lock()  # guards _running_intake
_running_intake: Intake | None = None


def start_intake(settings: Settings, manager: Any, store: Store) -> Intake | None:
    """Start this process's intake once (None when RABBITMQ_URL is not set)."""
    global _running_intake
    if not settings.rabbitmq_url:
        return None
    with _running_lock:
        if _running_intake is None:
            _running_intake = Intake(settings, manager, store).start()
        return _running_intake


def running_intake() -> Intake | None:
    with _running_lock:
        return _running_intake


def stop_intake(timeout: float = 30.0) -> bool:
    global _running_intake
    with _running_lock:
        intake, _running_intake = _running_intake, None
    return intake.stop(timeout) if intake is not None else True


def main() -> int:
    """`python -m utils.intake`: a headless consumer with the app's settings, until SIGTERM or Ctrl-C."""
    import signal

    from utils.services import open_services

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    services = open_services()
    if not services.settings.rabbitmq_url:
        print("RABBITMQ_URL is not set: the queue intake is off.")
        return 2
    intake = start_intake(services.settings, services.manager, services.store)
    assert intake is not None
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(f"taking jobs from {intake.queue_name}", flush=True)
    done.wait()
    stop_intake()
    services.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
