"""Everything a running app needs, opened once: settings, manager, store, file storage, job queue.

`get_services()` is the process-wide instance (thread-safe, opened on first use):
the Streamlit app, a script, a test or a worker all get the same one, so
`get_async_queue()` returns the queue the app uses.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from config.settings import Settings, load_settings
from utils.dask_backend import DaskStatus, attach_from_settings
from utils.smart_storage import SmartStorage
from utils.store import Store, open_store
from utils.task_queue import AsyncTaskQueue, open_task_queue
from utils.threading_manager import ThreadingManager, get_threading_manager


@dataclass
class Services:
    settings: Settings
    manager: ThreadingManager
    store: Store
    storage: SmartStorage
    queue: AsyncTaskQueue
    dask: DaskStatus | None = None  # set when DASK_SCHEDULER_ADDRESS is configured

    def close(self) -> None:
        """Stop the queue intake that stores here, store what the queue still holds, then close the store."""
        stop_queue_intake(self)
        self.queue.close()
        self.store.close()


def open_services(settings: Settings | None = None, manager: ThreadingManager | None = None) -> Services:
    """Open the store (creating `data/`), and resume jobs a previous server left unfinished."""
    settings = settings or load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    manager = manager or get_threading_manager()
    dask = attach_from_settings(manager, settings)  # falls back to the local pools, with a message, when unreachable
    store = open_store(settings)
    storage = SmartStorage(settings, store)
    queue = open_task_queue(manager, store, resume=True, lease_s=settings.lease_seconds,
                            buffer_rows=settings.save_buffer_rows,
                            server_id=settings.extra.get("SPINDLE_SERVER_ID") or None)
    return Services(settings, manager, store, storage, queue, dask)


_services_lock = threading.Lock()  # guards _services (opened once per process)
_services: Services | None = None


def get_services() -> Services:
    """The process-wide services, opened on first use from the environment's settings."""
    global _services
    with _services_lock:
        if _services is None:
            _services = open_services()
            start_queue_intake(_services)
        return _services


def close_services() -> None:
    """Close the process-wide services (intake, queue, store); the next get_services() opens them again.

    For an owner that releases them, e.g. Streamlit's cache_resource(on_release=...) in streamlit_app/widgets.py.
    """
    global _services
    with _services_lock:
        closing, _services = _services, None
    if closing is not None:
        closing.close()


def start_queue_intake(services: Services) -> None:
    """Queue intake (issue 14, helper G): consume RABBITMQ_URL's queue with the app's services; off when unset."""
    if services.settings.rabbitmq_url:
        from utils.intake import start_intake

        start_intake(services.settings, services.manager, services.store)


def stop_queue_intake(services: Services) -> None:
    """Stop the queue intake if it stores into these services' store: it stores or requeues what it
    holds before the store closes. Other services (a test's, a benchmark's) leave the app's intake alone."""
    from utils.intake import running_intake, stop_intake

    intake = running_intake()
    if intake is not None and intake.store is services.store:
        stop_intake()


def get_async_queue() -> AsyncTaskQueue:
    """The process-wide durable queue (the same one the app's pages use)."""
    return get_services().queue
