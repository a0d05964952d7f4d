"""Warm the "untrusted" pool for a media page: start its worker processes and load the analyser's libraries.

Why: a fresh worker process pays 3-4 s for its first audio or text file (scipy, pyloudnorm, py3langid,
VADER, the hyphenation dictionaries) on top of starting up. Done when the page opens, the visitor's
upload finds the workers ready instead of paying it.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Literal

from utils.decode_guard import UNTRUSTED_POOL

MediaKind = Literal["audio", "image", "text"]
REWARM_AFTER_S = 600.0  # workers may have been replaced since (a crash, a resize): warm again after this long

_warmed: dict[MediaKind, float] = {}  # kind → when this server last warmed the pool for it
_warmed_lock = threading.Lock()  # guards _warmed


def warm_media_workers(manager: Any, kind: MediaKind) -> bool:
    """Start the untrusted pool and load `kind`'s analyser in each of its workers, once in a while per server.

    Returns at once (the warming runs as a small background job); True when it started one now.
    """
    now = time.monotonic()
    with _warmed_lock:
        if now - _warmed.get(kind, -REWARM_AFTER_S) < REWARM_AFTER_S:
            return False
        _warmed[kind] = now
    try:
        manager.warm(UNTRUSTED_POOL)
        workers = int(manager.pool_settings(UNTRUSTED_POOL)["workers"])
        # One item per worker, each a chunk: a busy worker leaves the next item to another one.
        manager.map(warm_worker, [kind] * workers, backend="process", pool=UNTRUSTED_POOL, chunk_size=1,
                    name=f"warm {kind} workers")
    except Exception:  # noqa: BLE001 - a cold pool only makes the first upload slower
        with _warmed_lock:
            _warmed.pop(kind, None)
        return False
    return True


def warm_worker(kind: MediaKind) -> str:
    """In a worker process: import the file job's entry and the analyser, and pay its one-off costs."""
    import streamlit_app.file_jobs  # noqa: F401 - the job's entry point, with settings and storage

    if kind == "audio":
        from streamlit_app.audio import warm_up
    elif kind == "image":
        from streamlit_app.image import warm_up
    else:
        from streamlit_app.text import warm_up
    warm_up()
    time.sleep(0.2)  # still busy while the next item is handed out, so it goes to another worker
    return kind
