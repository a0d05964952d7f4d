"""Worker functions for the engine tests.

Process pools (forkserver) need picklable, importable functions, so every
function a test sends to the threading manager lives here, at module level.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

from utils.item_errors import TransientError
from utils.worker_state import worker_resource

# --- plain -----------------------------------------------------------------------------------


def square(x: int) -> int:
    return x * x


def identity(x):
    return x


def fail_on_multiples_of(x: int, every: int = 7) -> int:
    if x % every == 0:
        raise ValueError(f"bad input {x}")
    return x


def fail_on_seven(x: int) -> int:
    return fail_on_multiples_of(x, 7)


def always_value_error(x):
    raise ValueError(f"no good: {x}")


def sleepy(x, seconds: float = 0.02):
    time.sleep(seconds)
    return x


def sleep_20ms(x):
    time.sleep(0.02)
    return x


def sleep_5ms(x):
    time.sleep(0.005)
    return x


def sleep_50ms(x):
    time.sleep(0.05)
    return x


def sleep_seconds(seconds: float) -> float:
    """The item is the number of seconds to sleep."""
    time.sleep(seconds)
    return seconds


def cpu_spin(x: int, loops: int = 4000) -> int:
    """Pure Python arithmetic that holds the GIL."""
    total = 0
    for i in range(loops):
        total += (i * x) % 7
    return total


def thread_name(_x) -> str:
    time.sleep(0.002)
    return threading.current_thread().name


def pid_of(_x) -> int:
    return os.getpid()


# --- retries ---------------------------------------------------------------------------------
# Attempts are counted per item in a process-local dict (tests run these on threads).
_attempts: dict[tuple[str, int], int] = {}
_attempts_lock = threading.Lock()


def reset_attempts() -> None:
    with _attempts_lock:
        _attempts.clear()


def attempts_for(tag: str, item: int) -> int:
    with _attempts_lock:
        return _attempts.get((tag, item), 0)


def _count(tag: str, item: int) -> int:
    with _attempts_lock:
        _attempts[(tag, item)] = _attempts.get((tag, item), 0) + 1
        return _attempts[(tag, item)]


def flaky_twice(x: int) -> int:
    """Raises TransientError on the first two attempts of item 3, then succeeds."""
    if x == 3 and _count("flaky", x) <= 2:
        raise TransientError("try again")
    return x * 10


def value_error_counted(x: int) -> int:
    _count("value", x)
    raise ValueError("permanent")


def always_transient(x: int) -> int:
    _count("always", x)
    raise TransientError("never works")


# --- timeouts, kills -------------------------------------------------------------------------


def hang_on_minus_one(x: float) -> float:
    """Item -1 hangs (well past any test timeout); others return quickly."""
    if x == -1:
        time.sleep(30)
    else:
        time.sleep(0.001)
    return x


def hang_on_minus_one_long(x: float) -> float:
    if x == -1:
        time.sleep(120)
    return x


def kill_self_on_minus_one(x: int) -> int:
    """Item -1 kills its own worker process, as the OOM killer would."""
    if x == -1:
        if multiprocessing.parent_process() is None:  # never take the test runner down with it
            raise RuntimeError("the killer item ran in the test runner, not in a worker process")
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.002)
    return x * 2


# --- per-worker resources --------------------------------------------------------------------
_made = []
_made_lock = threading.Lock()


class Resource:
    def __init__(self) -> None:
        self.owner = threading.current_thread().name
        with _made_lock:
            _made.append(self)


def made_resources() -> list:
    with _made_lock:
        return list(_made)


def reset_resources() -> None:
    with _made_lock:
        _made.clear()


def use_resource(_x) -> tuple[str, int]:
    resource = worker_resource("test-resource", Resource)
    time.sleep(0.002)
    return threading.current_thread().name, id(resource)


_initialised: list[str] = []


def record_initializer() -> None:
    _initialised.append(threading.current_thread().name)


def initialised_threads() -> list[str]:
    return list(_initialised)


# --- phone numbers ---------------------------------------------------------------------------


def validate_phone(text: str) -> bool:
    import phonenumbers

    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(text, "US"))
    except phonenumbers.NumberParseException:
        return False


def phone_samples(n: int) -> list[str]:
    base = ["+1 650-253-0000", "(212) 555-0123", "+44 20 7946 0958", "415.555.2671", "not a phone",
            "+49 30 901820", "202-456-1111", "+33 1 42 68 53 00"]
    return [base[i % len(base)] for i in range(n)]


# --- concurrency -----------------------------------------------------------------------------
_running = 0
_max_running = 0
_running_lock = threading.Lock()


def reset_concurrency() -> None:
    global _running, _max_running
    with _running_lock:
        _running = _max_running = 0


def max_concurrency() -> int:
    with _running_lock:
        return _max_running


def track_concurrency(x, seconds: float = 0.005):
    """Sleeps briefly and records how many calls ran at the same time."""
    global _running, _max_running
    with _running_lock:
        _running += 1
        _max_running = max(_max_running, _running)
    try:
        time.sleep(seconds)
    finally:
        with _running_lock:
            _running -= 1
    return x


# --- timestamps of attempts (backoff) --------------------------------------------------------
_attempt_times: dict[int, list[float]] = {}


def reset_attempt_times() -> None:
    with _attempts_lock:
        _attempt_times.clear()


def attempt_times(item: int) -> list[float]:
    with _attempts_lock:
        return list(_attempt_times.get(item, []))


def transient_until_third(x: int) -> int:
    """Fails with TransientError on its first two attempts, records when each attempt started."""
    with _attempts_lock:
        times = _attempt_times.setdefault(x, [])
        times.append(time.monotonic())
        tries = len(times)
    if tries <= 2:
        raise TransientError(f"attempt {tries} of item {x} failed")
    return x + 1000


def slow_start() -> None:
    """A worker initializer that takes a while (a model loading, or a very busy machine)."""
    time.sleep(3.0)


# --- initializers and the memory-limited "untrusted" pool -------------------------------------
_connection = threading.local()


def open_connection() -> None:
    """A thread initializer: each worker thread opens its own 'connection' once."""
    _connection.value = f"connection of {threading.current_thread().name}"


def use_connection(_x) -> tuple[str, str | None]:
    return threading.current_thread().name, getattr(_connection, "value", None)


def mark_worker_process(directory: str) -> None:
    """A process initializer: leaves one file per worker process, named after its pid."""
    with open(os.path.join(directory, f"{os.getpid()}.started"), "a", encoding="utf-8") as handle:
        handle.write("started")


def worker_pid(_x) -> int:
    return os.getpid()


def address_space_limit(_x) -> int:
    import resource

    return resource.getrlimit(resource.RLIMIT_AS)[0]


def allocate_mb(megabytes: int) -> int:
    """Holds `megabytes` of memory for a moment, touching every page."""
    block = bytearray(megabytes * 2**20)
    block[:: 4096] = b"x" * len(block[:: 4096])
    return megabytes


def die_on_minus_one(x: int) -> int:
    """An item that kills its worker process, as a native crash would."""
    if x == -1:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def cpu_spin_tracked(x: int) -> int:
    """CPU-bound Python (holds the GIL for ~5 ms) that records how many calls ran at once."""
    global _running, _max_running
    with _running_lock:
        _running += 1
        _max_running = max(_max_running, _running)
    try:
        return cpu_spin(x, loops=40_000)
    finally:
        with _running_lock:
            _running -= 1


def sleep_or_fail_on_zero_index(pair: tuple[int, float]) -> int:
    index, seconds = pair
    if index == 0:
        raise ValueError("first item")
    time.sleep(seconds)
    return index


_flaky_seen: set[int] = set()
_flaky_lock = threading.Lock()


def reset_flaky() -> None:
    with _flaky_lock:
        _flaky_seen.clear()


def fails_first_time(x: int) -> int:
    """Items 3 and 13 fail on their first call in this process, then succeed."""
    with _flaky_lock:
        first = x not in _flaky_seen
        _flaky_seen.add(x)
    if first and x % 10 == 3:
        raise ValueError(f"flaky {x}")
    return x
