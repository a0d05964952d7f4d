"""Warm the "untrusted" pool for a media page: start its worker processes and load the analyser's libraries.

Why: a fresh worker process pays 3-4 s for its first audio or text file (scipy, pyloudnorm, py3langid,
VADER, the hyphenation dictionaries) on top of starting up. Done when the page opens, the visitor's
upload finds the workers ready instead of paying it.

The server itself needs scikit-learn for the Text page's look-alike texts (TF-IDF): importing it costs
~1.5 s, which the finished page's first render paid while holding the GIL, so even the results table
already drawn reached the browser late. It is imported in a background thread when the page opens.
"""
from __future__ import annotations

import functools
from typing import Any, Literal

from streamlit_app.warm_workers import import_in_background, pause_for_handout, warm_pool_workers
from utils.decode_guard import UNTRUSTED_POOL

MediaKind = Literal["audio", "image", "text"]
SERVER_IMPORTS: dict[MediaKind, tuple[str, ...]] = {"text": ("sklearn.feature_extraction.text",)}


def warm_media_workers(manager: Any, kind: MediaKind) -> bool:
    """Start the untrusted pool and load `kind`'s analyser in each of its workers, once in a while per server.

    Returns at once (the warming runs as a small background job); True when it started one now.
    """
    started = warm_pool_workers(manager, UNTRUSTED_POOL, functools.partial(warm_worker, kind), f"warm {kind} workers")
    if started and SERVER_IMPORTS.get(kind):
        import_in_background(SERVER_IMPORTS[kind], f"spindle-warm-{kind}")
    return started


def warm_worker(kind: MediaKind, worker: int = 0) -> int:
    """In a worker process: import the file job's entry and the analyser, and pay its one-off costs."""
    import streamlit_app.file_jobs  # noqa: F401 - the job's entry point, with settings and storage

    if kind == "audio":
        from streamlit_app.audio import warm_up
    elif kind == "image":
        from streamlit_app.image import warm_up
    else:
        from streamlit_app.text import warm_up
    warm_up()
    pause_for_handout()
    return worker
