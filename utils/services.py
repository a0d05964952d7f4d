"""Everything a running app needs, opened once: settings, manager, store, file storage, job queue."""
from __future__ import annotations

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
        self.store.close()


def open_services(settings: Settings | None = None, manager: ThreadingManager | None = None) -> Services:
    """Open the store (creating `data/`), and resume jobs a previous server left unfinished."""
    settings = settings or load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    manager = manager or get_threading_manager()
    dask = attach_from_settings(manager, settings)  # falls back to the local pools, with a message, when unreachable
    store = open_store(settings)
    storage = SmartStorage(settings, store)
    queue = open_task_queue(manager, store, resume=True)
    return Services(settings, manager, store, storage, queue, dask)
