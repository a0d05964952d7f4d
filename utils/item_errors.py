"""What a failed item leaves in its slot, and which errors are worth retrying."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ItemError:
    """A failed item: the batch goes on, and this says which item failed and why."""

    index: int
    error_type: str
    message: str
    attempts: int = 1

    def __str__(self) -> str:
        return f"item {self.index}: {self.error_type}: {self.message} (after {self.attempts} attempt(s))"

    def to_dict(self) -> dict:
        return asdict(self)


class TransientError(Exception):
    """Raise this (or subclass it) from a worker function to ask for a retry with backoff."""


class WorkerDied(Exception):
    """The worker process running an item was killed or ran out of memory."""


TRANSIENT_TYPES: tuple[type[BaseException], ...] = (TransientError, ConnectionError, TimeoutError)


def is_transient(exc: BaseException) -> bool:
    """Retry only errors that may pass: a bad input fails the same way every time."""
    return isinstance(exc, TRANSIENT_TYPES) or bool(getattr(exc, "transient", False))
