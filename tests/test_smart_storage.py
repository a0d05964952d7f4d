"""Uploads: safe names, limits from the settings, one copy per content, per-file errors."""
from __future__ import annotations

import hashlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from config.settings import Settings
from tests.fixtures.supabase_server import FakeSupabase, supabase_server  # noqa: F401  (fixture)
from utils.smart_storage import SmartStorage, UploadRejected, sanitize_name
from utils.store.sqlite_store import SQLiteStore
from utils.store.supabase_store import SupabaseStore

MB = 1024 * 1024


class StandInManager:
    """Just enough of utils/threading_manager.py: submit_task on named pools, backed by threads."""

    def __init__(self, workers: int = 4) -> None:
        self.executor = ThreadPoolExecutor(max_workers=workers)
        self.pools: list[str | None] = []

    def submit_task(self, fn, *args, task_name=None, pool=None, **kwargs) -> Future:
        self.pools.append(pool)
        return self.executor.submit(fn, *args, **kwargs)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", max_upload_mb=1, max_files_per_upload=4)


@pytest.fixture
def storage(settings: Settings):
    store = SQLiteStore(settings.sqlite_path)
    yield SmartStorage(settings, store)
    store.close()


@pytest.mark.parametrize("name, safe", [
    ("../../etc/passwd", "passwd"),
    ("/etc/shadow", "shadow"),
    ("C:\\Users\\ana\\report.csv", "report.csv"),
    ("..\\..\\boot.ini", "boot.ini"),
    ("phones\x00.csv\n", "phones.csv"),
    ("\u202eexe.csv", "exe.csv"),  # a right-to-left override would disguise the extension
    ("..", "upload"),
    ("", "upload"),
    (".bashrc", "bashrc"),
    ('a<b>:c"d|e?f*.txt', "a_b__c_d_e_f_.txt"),
    ("Zoë café.xlsx", "Zoë café.xlsx"),
    ("x" * 300 + ".csv", "x" * 196 + ".csv"),
])
def test_file_names_lose_folders_traversal_and_control_characters(name: str, safe: str):
    assert sanitize_name(name) == safe


def test_a_hostile_name_is_stored_inside_the_uploads_folder(storage: SmartStorage, settings: Settings):
    meta = storage.save_upload("ana", "../../../../tmp/evil.sh", b"#!/bin/sh\n")
    assert meta["name"] == "evil.sh"
    stored = (settings.data_dir / meta["path"]).resolve()
    assert stored.is_relative_to((settings.data_dir / "uploads").resolve())
    assert stored.read_bytes() == b"#!/bin/sh\n"
    assert not Path("/tmp/evil.sh").exists()


def test_files_over_the_size_limit_are_rejected_naming_file_and_limit(storage: SmartStorage):
    assert storage.save_upload("ana", "exact.bin", b"\0" * MB)["size"] == MB
    with pytest.raises(UploadRejected, match=r"big\.bin is 1\.0 MB, over the 1 MB limit per file \(MAX_UPLOAD_MB\)"):
        storage.save_upload("ana", "big.bin", b"\0" * (MB + 1))


def test_the_same_content_is_stored_once(storage: SmartStorage, settings: Settings):
    first = storage.save_upload("ana", "a.csv", b"phone\n+441234\n")
    again = storage.save_upload("ana", "a.csv", b"phone\n+441234\n")
    other_name = storage.save_upload("ben", "b.csv", b"phone\n+441234\n")
    assert again == first
    assert other_name["id"] != first["id"] and other_name["name"] == "b.csv"
    assert other_name["path"] == first["path"] and other_name["sha256"] == hashlib.sha256(b"phone\n+441234\n").hexdigest()
    stored = [p for p in (settings.data_dir / "uploads").rglob("*") if p.is_file()]
    assert len(stored) == 1
    assert storage.store.get_file(first["id"]) == first


def test_reading_returns_the_bytes_and_detects_damage(storage: SmartStorage, settings: Settings):
    meta = storage.save_upload("ana", "a.txt", b"hello")
    assert storage.read(meta) == b"hello"
    (settings.data_dir / meta["path"]).write_bytes(b"HELLO")
    with pytest.raises(OSError, match="damaged"):
        storage.read(meta)
    with pytest.raises(UploadRejected, match="outside the uploads folder"):
        storage.read({**meta, "path": "../../etc/passwd"})


def test_one_bad_file_does_not_stop_the_others(storage: SmartStorage):
    files = [("ok.csv", b"a,b\n"), ("huge.csv", b"x" * (MB + 1)), ("text.csv", "not bytes"), ("ok2.csv", b"c,d\n")]
    seen: list[tuple[int, int]] = []
    saved, errors = storage.upload_multiple_files("ana", files, on_progress=lambda done, total: seen.append((done, total)))
    assert [m["name"] for m in saved] == ["ok.csv", "ok2.csv"]
    assert [(e["index"], e["name"]) for e in errors] == [(1, "huge.csv"), (2, "text.csv")]
    assert "MAX_UPLOAD_MB" in errors[0]["error"] and "expected the file's bytes" in errors[1]["error"]
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_files_past_the_count_limit_are_reported_by_name(storage: SmartStorage):
    files = [(f"f{i}.csv", f"{i}".encode()) for i in range(6)]
    saved, errors = storage.upload_multiple_files("ana", files)
    assert len(saved) == 4
    assert [e["name"] for e in errors] == ["f4.csv", "f5.csv"]
    assert errors[0]["error"] == "f4.csv is file 5 of 6, over the limit of 4 files per upload (MAX_FILES_PER_UPLOAD)"


def test_uploads_run_on_the_upload_pool_and_report_progress_here(storage: SmartStorage):
    manager = StandInManager()
    caller, progress_threads = threading.get_ident(), set()
    files = [(f"f{i}.csv", f"content {i}".encode()) for i in range(4)]

    def on_progress(done: int, total: int) -> None:
        progress_threads.add(threading.get_ident())

    saved, errors = storage.upload_multiple_files("ana", files, manager=manager, on_progress=on_progress)
    manager.executor.shutdown()
    assert errors == []
    assert [m["name"] for m in saved] == ["f0.csv", "f1.csv", "f2.csv", "f3.csv"]
    assert manager.pools == ["upload"] * 4
    assert progress_threads == {caller}
    assert [storage.read(m) for m in saved] == [data for _, data in files]


@pytest.mark.postgres
def test_with_supabase_configured_files_go_to_the_bucket(supabase_server: FakeSupabase, tmp_path: Path):
    settings = Settings(data_dir=tmp_path, supabase_url=supabase_server.url, supabase_key=supabase_server.key,
                        supabase_bucket="spindle-uploads", max_upload_mb=1)
    store = SupabaseStore(settings.supabase_url, settings.supabase_key)
    storage = SmartStorage(settings, store)
    first = storage.save_upload("ana", "../a.csv", b"phone\n+441234\n")
    second = storage.save_upload("ben", "b.csv", b"phone\n+441234\n")  # same bytes: the bucket already has them
    sha = hashlib.sha256(b"phone\n+441234\n").hexdigest()
    assert (first["storage"], first["path"], first["name"]) == ("supabase", f"{sha[:2]}/{sha}", "a.csv")
    assert list(supabase_server.objects) == [("spindle-uploads", f"{sha[:2]}/{sha}")]
    assert storage.read(second) == b"phone\n+441234\n"
    assert store.get_file(second["id"])["owner"] == "ben"
    assert not (tmp_path / "uploads").exists()
    store.close()
