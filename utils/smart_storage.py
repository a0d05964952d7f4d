"""Uploaded files: checked, stored once by content, recorded in the store, read back verified.

Bytes are content-addressed by SHA-256 (data_dir/uploads/ab/abcd..., or the same
key in the Supabase bucket when SUPABASE_URL/KEY are set), so the same content is
written once however often or under whatever name it is uploaded. The user's
file name is only metadata, and is sanitised anyway because it is shown and
offered back for download: no directories, no traversal, no control characters.
Limits come from the settings and are reported naming the file and the limit.
"""
from __future__ import annotations

import errno
import hashlib
import os
import re
import unicodedata
import uuid
from collections.abc import Callable
from concurrent.futures import Future, as_completed
from pathlib import Path
from typing import Any, Protocol

from config.settings import Settings
from utils.store.base import Store, now

UPLOAD_POOL = "upload"
MAX_NAME_CHARS = 200
FALLBACK_NAME = "upload"
_UNSAFE = re.compile(r'[<>:"|?*]')


class UploadRejected(ValueError):
    """An upload broke a rule (size, count, content); the message says which file and which limit."""


class DiskFull(UploadRejected):
    """The data folder has no room left; nothing partial was kept."""


class TaskSubmitter(Protocol):
    def submit_task(self, fn: Callable[..., Any], *args: Any, task_name: str | None = None,
                    pool: str | None = None, **kwargs: Any) -> Future: ...


def sanitize_name(name: str) -> str:
    """A display-safe base name: no folders, no leading dots, no control or format characters."""
    text = unicodedata.normalize("NFC", str(name))
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")  # controls, bidi overrides, ...
    text = text.replace("\\", "/").rsplit("/", 1)[-1]  # drops C:\dir\, /etc/, ../../
    text = _UNSAFE.sub("_", text).strip().lstrip(".").rstrip(". ")
    if not text:
        return FALLBACK_NAME
    if len(text) > MAX_NAME_CHARS:
        stem, dot, suffix = text.rpartition(".")
        suffix = dot + suffix if dot and len(suffix) <= 16 else ""
        text = text[: MAX_NAME_CHARS - len(suffix)] + suffix
    return text


class SmartStorage:
    """Saves uploads for one app (settings + store); thread-safe, no state beyond its paths."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.data_dir = Path(settings.data_dir)
        self.uploads_dir = self.data_dir / "uploads"
        self.bucket = None
        if settings.supabase_url and settings.supabase_key:
            from utils.store.supabase_store import open_bucket  # the supabase client is a heavy import

            self.bucket = open_bucket(settings.supabase_url, settings.supabase_key, settings.supabase_bucket, store)

    @property
    def max_bytes(self) -> int:
        return self.settings.max_upload_mb * 1024 * 1024

    @property
    def max_batch_bytes(self) -> int:
        return self.settings.max_batch_mb * 1024 * 1024

    def save_upload(self, owner: str, name: str, data: bytes) -> dict:
        """Check, store (once per content) and record one file; returns its metadata row."""
        safe = sanitize_name(name)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise UploadRejected(f"{safe}: expected the file's bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) > self.max_bytes:
            raise UploadRejected(
                f"{safe} is {len(data) / 1048576:.1f} MB, over the {self.settings.max_upload_mb} MB "
                "limit per file (MAX_UPLOAD_MB)"
            )
        sha = hashlib.sha256(data).hexdigest()
        file_id = hashlib.sha256(f"{owner}\0{safe}\0{sha}".encode()).hexdigest()[:32]
        existing = self.store.get_file(file_id)
        if existing is not None:
            return dict(existing)
        if self.bucket is not None:
            path, storage = f"{sha[:2]}/{sha}", "supabase"
            self.bucket.upload(path, data)
        else:
            path, storage = self._write_local(sha, data, safe), "local"
        meta = {"id": file_id, "owner": owner, "name": safe, "size": len(data), "sha256": sha,
                "path": path, "storage": storage, "created_at": now()}
        self.store.add_file(meta)
        return dict(self.store.get_file(file_id) or meta)

    def _write_local(self, sha: str, data: bytes, name: str = FALLBACK_NAME) -> str:
        """Write the bytes under their hash unless already there; returns the path relative to data_dir.

        A failed write leaves nothing behind: the .part file is removed, and a full disk is said plainly.
        """
        target = self.uploads_dir / sha[:2] / sha
        if not (target.is_file() and target.stat().st_size == len(data)):
            partial = target.with_name(f".{sha}.{uuid.uuid4().hex}.part")
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                partial.write_bytes(data)
                os.replace(partial, target)  # atomic: readers never see half a file, racing writers agree
            except OSError as exc:
                partial.unlink(missing_ok=True)
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise DiskFull(
                        f"{name} was not stored: the server's disk is full (no space left in its data folder). "
                        "Nothing partial was kept; try again when space is freed."
                    ) from exc
                raise
        return target.relative_to(self.data_dir).as_posix()

    def read(self, file_meta: dict) -> bytes:
        """The file's bytes, checked against its recorded SHA-256."""
        if file_meta["storage"] == "supabase":
            if self.bucket is None:
                raise UploadRejected(f"{file_meta['name']} is in the Supabase bucket, but SUPABASE_URL/KEY are not set")
            data = self.bucket.download(file_meta["path"])
        else:
            uploads = self.uploads_dir.resolve()
            full = (self.data_dir / file_meta["path"]).resolve()
            if not full.is_relative_to(uploads):
                raise UploadRejected(f"{file_meta['name']}: stored path {file_meta['path']!r} is outside the uploads folder")
            data = full.read_bytes()
        if hashlib.sha256(data).hexdigest() != file_meta["sha256"]:
            raise OSError(f"{file_meta['name']}: stored bytes do not match their SHA-256; the copy is damaged")
        return data

    def upload_multiple_files(self, owner: str, files: list[tuple[str, bytes]], manager: TaskSubmitter | None = None,
                              on_progress: Callable[[int, int], None] | None = None) -> tuple[list[dict], list[dict]]:
        """Save many files; one bad file never stops the others.

        Returns (saved metadata in input order, errors as {"index", "name", "error"}).
        Files past MAX_FILES_PER_UPLOAD, or past MAX_BATCH_MB in all, are reported as errors
        without being stored. With a manager the
        files are saved on its "upload" pool; on_progress(done, total) is called in
        this thread after each file, so a page may update its progress bar from it.
        """
        limit = self.settings.max_files_per_upload
        total = len(files)
        outcomes: dict[int, dict] = {}
        errors: dict[int, dict] = {}
        for index, (name, _) in enumerate(files[limit:], start=limit):
            errors[index] = {"index": index, "name": sanitize_name(name),
                             "error": f"{sanitize_name(name)} is file {index + 1} of {total}, over the limit of "
                                      f"{limit} files per upload (MAX_FILES_PER_UPLOAD)"}
        accepted = []
        batch_bytes, batch_limit = 0, self.max_batch_bytes
        for index, (name, data) in enumerate(files[:limit]):
            size = len(data) if isinstance(data, (bytes, bytearray, memoryview)) else 0
            if batch_bytes + size > batch_limit:
                errors[index] = {"index": index, "name": sanitize_name(name),
                                 "error": f"{sanitize_name(name)} was not stored: with it the batch would pass "
                                          f"{self.settings.max_batch_mb:,} MB in all, the limit per batch "
                                          "(MAX_BATCH_MB)"}
            else:
                batch_bytes += size
                accepted.append((index, (name, data)))
        progress = {"done": len(errors)}

        def finish(index: int, result: Callable[[], dict]) -> None:
            try:
                outcomes[index] = result()
            except Exception as exc:  # isolate: report and go on with the other files
                errors[index] = _error(index, files[index][0], exc)
            progress["done"] += 1
            if on_progress is not None:
                on_progress(progress["done"], total)

        if manager is None:
            for index, (name, data) in accepted:
                finish(index, lambda: self.save_upload(owner, name, data))
        else:
            futures = {
                manager.submit_task(self.save_upload, owner, name, data, task_name=f"upload:{sanitize_name(name)}",
                                    pool=UPLOAD_POOL): index
                for index, (name, data) in accepted
            }
            for future in as_completed(futures):
                finish(futures[future], future.result)
        return [outcomes[i] for i in sorted(outcomes)], [errors[i] for i in sorted(errors)]


def _error(index: int, name: str, exc: Exception) -> dict:
    safe = sanitize_name(name)
    message = str(exc) if isinstance(exc, UploadRejected) else f"{safe}: {type(exc).__name__}: {exc}"
    return {"index": index, "name": safe, "error": message}
