"""Hostile files fail alone: refused before decoding, in the untrusted pool's capped workers, with a reason.

Real files made in memory (tests/hostile_files.py): 0.1-0.3 MB each, gigabytes when decoded. What happens
when a file gets past the guards anyway (MemoryError under RLIMIT_AS, a killed worker) is the engine's
behaviour, tested in tests/test_threading_manager.py with the same "untrusted" pool.
"""
from __future__ import annotations

import dataclasses
import errno
import io
import os
import subprocess
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

from config.settings import load_settings
from config.threading_config import load_threading_config
from streamlit_app import audio, file_jobs, image, media_samples, text
from streamlit_app.media_errors import BadFileError
from tests import hostile_files
from utils.decode_guard import UNTRUSTED_POOL
from utils.services import open_services
from utils.smart_storage import DiskFull, SmartStorage
from utils.threading_manager import ThreadingManager

# (page, file name, maker, words the reason must hold)
BOMBS = [
    ("image", "grey16_8000x8000.png", lambda: hostile_files.png_bomb(8000, 8000, 16, 0), "MAX_IMAGE_PIXELS"),
    ("image", "rgb16_6000x6000.png", lambda: hostile_files.png_bomb(6000, 6000, 16, 2), "MAX_DECODED_MB"),
    ("image", "pixels_100000x100000.png", lambda: media_samples.bomb_png(100_000, 100_000), "decompression bomb"),
    ("audio", "eight_channels_655khz.flac", hostile_files.flac_bomb, "MAX_DECODED_MB"),
    ("audio", "thousand_channels.wav", hostile_files.wav_channel_bomb, "MAX_AUDIO_CHANNELS"),
    ("text", "zip_bomb.docx", hostile_files.docx_bomb, "MAX_ZIP_PART_MB"),
]
ANALYSERS = {"image": image.analyse_image, "audio": audio.analyse_audio, "text": text.analyse_text}
SAMPLES = {"image": media_samples.sample_image_files, "audio": media_samples.sample_audio_files,
           "text": media_samples.sample_text_files}


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    return {name: make() for _, name, make, _ in BOMBS}


@pytest.mark.parametrize("page, name, reason", [(p, n, r) for p, n, _, r in BOMBS], ids=[n for _, n, _, _ in BOMBS])
def test_each_bomb_is_refused_from_its_header_with_the_limit_named(bombs, page, name, reason):
    before = psutil.Process().memory_info().rss
    with pytest.raises(BadFileError, match=reason) as caught:
        ANALYSERS[page](name, bombs[name])
    assert caught.value.name == name
    assert psutil.Process().memory_info().rss - before < 64 * 2**20  # nothing was decoded


def test_the_16_bit_ramp_still_measures_right_on_the_lean_path():
    ramp = np.linspace(0, 65535, 256 * 64, dtype=np.uint16).reshape(64, 256)
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, "PNG")
    row = image.analyse_image("ramp.png", buffer.getvalue())
    assert row["brightness"] == pytest.approx(0.5, abs=0.02)


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    manager = ThreadingManager(dataclasses.replace(load_threading_config(), max_workers_per_user=4))
    opened = open_services(load_settings({"SPINDLE_DATA_DIR": str(tmp_path_factory.mktemp("hostile"))}),
                           manager=manager)
    yield opened
    opened.close()
    manager.shutdown(cancel_futures=True)


@pytest.mark.parametrize("page", ["image", "audio", "text"])
def test_a_batch_with_bombs_gives_each_its_row_and_reason_and_the_rest_goes_on(services, bombs, page):
    ordinary = [(name, data) for name, data, *_ in SAMPLES[page]()[:2]]
    hostile = [(name, bombs[name]) for p, name, _, _ in BOMBS if p == page]
    job_id = file_jobs.start_file_job(services, "tester", page, ordinary + hostile,
                                      f"streamlit_app.{page}:analyse_{page}")
    status = services.queue.wait(job_id, timeout=120)
    assert status["status"] == "completed" and status["total"] == len(ordinary) + len(hostile)
    rows = {row["input"]["name"]: row for row in services.store.item_rows(job_id)}
    assert len(rows) == len(ordinary) + len(hostile) and all(r["status"] != "pending" for r in rows.values())
    for name, _ in ordinary:
        assert rows[name]["status"] == "completed", rows[name]["error"]
    table = file_jobs.results_frame(services, job_id).set_index("file")
    for p, name, _, reason in BOMBS:
        if p == page:
            assert rows[name]["status"] == "failed" and reason in rows[name]["error"]
            assert reason in table.loc[name, "reason"]
    assert services.manager.pool_settings(UNTRUSTED_POOL)["kind"] == "process"


def test_audio_charts_come_from_the_workers_preview_not_a_second_decode(services):
    files = [(name, data) for name, data, *_ in media_samples.sample_audio_files()[:2]]
    job_id = file_jobs.start_file_job(services, "tester", "audio", files, "streamlit_app.audio:analyse_audio")
    services.queue.wait(job_id, timeout=120)
    details = file_jobs.result_details(services, job_id)
    preview = details[files[0][0]]["chart_preview"]
    assert isinstance(preview, str) and len(preview) < 16_000  # small enough to keep with the row
    assert "chart_preview" not in file_jobs.results_frame(services, job_id).columns
    arrays = audio.preview_arrays(preview)
    assert len(arrays["times"]) <= audio.WAVEFORM_POINTS
    assert arrays["decibels"].shape[1] == audio.SPECTROGRAM_BINS


def test_batches_are_capped_by_total_bytes_and_count(tmp_path):
    settings = dataclasses.replace(load_settings({"SPINDLE_DATA_DIR": str(tmp_path)}), max_batch_mb=1,
                                   max_files_per_upload=3)
    from utils.store import open_store

    store = open_store(settings)
    storage = SmartStorage(settings, store)
    files = [("a.bin", b"a" * 600_000), ("b.bin", b"b" * 600_000), ("c.bin", b"c" * 100_000), ("d.bin", b"d")]
    saved, errors = storage.upload_multiple_files("owner", files)
    assert [meta["name"] for meta in saved] == ["a.bin", "c.bin"]
    reasons = {error["name"]: error["error"] for error in errors}
    assert "MAX_BATCH_MB" in reasons["b.bin"] and "MAX_FILES_PER_UPLOAD" in reasons["d.bin"]
    store.close()


@pytest.fixture
def tiny_disk(tmp_path) -> Path:
    """A real 1 MB tmpfs as the data folder (the tests run as root, as on CI)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.fail("the full-disk test mounts a tmpfs and needs root (CI runs as root)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_said_plainly_and_leaves_no_partial_file(tmp_path, tiny_disk):
    settings = dataclasses.replace(load_settings({"SPINDLE_DATA_DIR": str(tiny_disk)}), supabase_url="")

    class NoStore:
        def get_file(self, _file_id):
            return None

        def add_file(self, meta):
            self.meta = meta

    storage = SmartStorage(settings, NoStore())  # type: ignore[arg-type]
    storage.save_upload("owner", "small.bin", b"s" * 100_000)
    with pytest.raises(DiskFull, match="disk is full") as caught:
        storage.save_upload("owner", "big.bin", os.urandom(2_000_000))
    assert caught.value.__cause__.errno == errno.ENOSPC
    leftovers = [p.name for p in (tiny_disk / "uploads").rglob("*") if p.name.endswith(".part")]
    assert leftovers == []
    saved, errors = storage.upload_multiple_files("owner", [("again.bin", os.urandom(2_000_000)),
                                                            ("fits.bin", b"f" * 1000)])
    assert [m["name"] for m in saved] == ["fits.bin"] and "disk is full" in errors[0]["error"]
