"""The registry of task functions the durable queue may run, looked up by name.

Why: the store holds data, never code. A job row names its task ("file.analyse"),
and the queue finds the function here; nothing read back from the store is ever
imported. Modules register their tasks at import with `@task("name")`; a fresh
process learns every task of ours by importing KNOWN_TASK_MODULES (names written
here, in our code), which `resolve_task` does once, lazily, on the first miss.

Each task is also reachable by its import path "module:qualname", so jobs stored
before the registry existed still resume, but only for functions registered here.
"""
from __future__ import annotations

import importlib
import logging
import threading
from typing import Any, Callable, TypeVar

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# Modules whose import registers the app's durable tasks (our code, never names from the store).
KNOWN_TASK_MODULES: tuple[str, ...] = (
    "utils.task_queue",
    "streamlit_app.file_jobs",
    "streamlit_app.validation.batch",
)

_lock = threading.Lock()  # guards _tasks and _names
_tasks: dict[str, Callable[..., Any]] = {}  # name or "module:qualname" alias -> function
_names: dict[int, str] = {}  # id(function) -> its stable name
# Guards _known_loaded and the imports of KNOWN_TASK_MODULES: a second thread waits until they are done.
# Reentrant: a known module that resolves a task while it is being imported must not block itself.
_loading_lock = threading.RLock()
_known_loaded = False  # True only once every known module was imported (or failed with a logged reason)


class UnknownTaskError(ValueError):
    """A task name that is not registered in this process (and is never imported to find out)."""


def _import_path(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}:{getattr(fn, '__qualname__', getattr(fn, '__name__', repr(fn)))}"


def register_task(fn: Callable[..., Any], name: str | None = None) -> str:
    """Register fn under `name` (default "module:qualname") and its import path; returns the name.

    Registering the same function again is harmless; a name already taken by another
    function is an error, so a task can never be swapped for another under its name.
    """
    if not callable(fn):
        raise TypeError(f"a task must be callable, not {type(fn).__name__}")
    path = _import_path(fn)
    name = name or path
    with _lock:
        for key in (name, path):
            current = _tasks.get(key)
            if current is not None and current is not fn and _import_path(current) != path:
                raise ValueError(f"task name {key!r} is already registered for {_import_path(current)}")
        _tasks[name] = fn
        _tasks.setdefault(path, fn)
        _names.setdefault(id(fn), name)
        return _names[id(fn)]


def task(name: str | None = None) -> Callable[[F], F]:
    """Decorator: register the function as a durable task under a stable name."""
    def decorate(fn: F) -> F:
        register_task(fn, name)
        return fn

    return decorate


def task_name(fn: Callable[..., Any]) -> str:
    """The name fn is registered under (registering it under its import path if it is new)."""
    with _lock:
        known = _names.get(id(fn))
        if known is not None and _tasks.get(known) is fn:
            return known
    return register_task(fn)


def _load_known_modules() -> None:
    """Import the modules that register our tasks, once; a thread that arrives meanwhile waits for them.

    (Marking them loaded before the imports finished let a second thread look a task up too
    early and get UnknownTaskError.) _lock is not held while importing: imports register tasks.
    """
    global _known_loaded
    with _loading_lock:
        if _known_loaded:
            return
        for module in KNOWN_TASK_MODULES:
            try:
                importlib.import_module(module)
            except Exception:  # noqa: BLE001 - a module that cannot load has no tasks to offer; say why once
                log.exception("task module %s could not be imported", module)
        _known_loaded = True


def resolve_task(name: str) -> Callable[..., Any]:
    """The registered function for a name; UnknownTaskError for anything else (nothing is imported by name)."""
    if not isinstance(name, str) or not name:
        raise UnknownTaskError(f"a task name must be a non-empty string, not {name!r}")
    with _lock:
        fn = _tasks.get(name)
    if fn is None:
        _load_known_modules()
        with _lock:
            fn = _tasks.get(name)
    if fn is None:
        raise UnknownTaskError(f"{name!r} is not a registered task")
    return fn


def is_registered(name: str) -> bool:
    try:
        resolve_task(name)
    except UnknownTaskError:
        return False
    return True
