"""Uploaded files as durable jobs: store each file once, analyse it in a worker, read the results back.

Shared by the Audio, Image and Text pages. A file the storage rejects (too large,
too many files) still becomes a row with its reason, so nothing silently disappears.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from config.settings import load_settings
from streamlit_app.media_errors import BadFileError
from utils.decode_guard import UNTRUSTED_POOL
from utils.services import Services
from utils.smart_storage import SmartStorage
from utils.task_registry import register_task, resolve_task, task

FILE_JOB_FN = "streamlit_app.file_jobs:analyse_stored_file"
FILE_KINDS = ("audio", "image", "text")  # the job kinds of the Audio, Image and Text pages
HIDDEN_COLUMNS = ("thumbnail_png_b64", "text", "chart_preview")


def _register_analysers() -> None:
    """The page analysers a file job may run, registered under their "module:function" names, so a fresh
    worker process (which imports this module to find FILE_JOB_FN) resolves them without importing by name."""
    from streamlit_app import audio, image, text

    for analyser in (audio.analyse_audio, image.analyse_image, text.analyse_text):
        register_task(analyser)


_register_analysers()


@task(FILE_JOB_FN)
def analyse_stored_file(item: dict, params: dict) -> dict:
    """Worker entry: read one stored upload and run the page's analyser on it."""
    if item.get("rejected"):
        raise BadFileError(item["rejected"])
    settings = dataclasses.replace(load_settings(), data_dir=Path(params["data_dir"]))
    data = SmartStorage(settings, store=None).read(item)  # type: ignore[arg-type]
    analyser = resolve_task(params["analyser"])  # a registered analyser only: nothing is imported by name
    return analyser(item["name"], data, params.get("options") or {})


def start_file_job(services: Services, owner: str, kind: str, files: Sequence[tuple[str, bytes]], analyser: str,
                   options: dict | None = None, exec_kind: str = "auto", pool: str | None = None) -> str:
    """Store the files (in parallel, on the upload pool) and start the durable analysis job.

    The analysis always runs in the "untrusted" pool's worker processes, whose memory is capped:
    uploaded bytes are never decoded in the server process. exec_kind and pool are kept for callers
    that still pass them, and ignored.
    """
    del exec_kind, pool
    saved, errors = services.storage.upload_multiple_files(owner, list(files), manager=services.manager)
    inputs: list[dict[str, Any]] = [
        {"file_id": m["id"], "name": m["name"], "path": m["path"], "sha256": m["sha256"], "storage": m["storage"]}
        for m in saved]
    inputs += [{"name": e["name"], "rejected": e["error"]} for e in errors]
    params = {"analyser": analyser, "options": options or {}, "data_dir": str(services.settings.data_dir)}
    return services.queue.submit_batch(FILE_JOB_FN, inputs, owner=owner, kind=kind, params=params,
                                       exec_kind="process", pool=UNTRUSTED_POOL)


def results_frame(services: Services, job_id: str) -> pd.DataFrame:
    """One row per file: its name, status and reason, then what the analyser found (built once per job version).

    While the job runs, the table is streamed (redrawn on every poll): it leaves out the thumbnails, which
    made each poll send and draw up to 200 pictures while the workers needed the CPU. The finished table has them.
    """
    from streamlit_app.job_cache import cached, record_version

    record = services.store.get_job(job_id)
    version = None if record is None else record_version(record)
    running = record is not None and record["status"] in ("pending", "running")
    return cached(services.store, job_id, "file_results", lambda: _results_frame(services, job_id, not running),
                  version)


def _results_frame(services: Services, job_id: str, thumbnails: bool = True) -> pd.DataFrame:
    rows = services.store.item_rows(job_id)  # one read: inputs (names) and results together
    table = []
    names = {row["idx"]: (row.get("input") or {}).get("name") for row in rows}
    for row in rows:
        result = row.get("result") or {}
        line = {"file": result.get("name") or names.get(row["idx"], f"item {row['idx']}"),
                "status": "ok" if row["status"] == "completed" else row["status"],
                "reason": _reason(row.get("error")),
                "ms": round(row["duration_ms"] or 0.0, 1) if row.get("duration_ms") is not None else None}
        if thumbnails and result.get("thumbnail_png_b64"):  # shown as a picture in the table (ImageColumn)
            line["thumbnail"] = f"data:image/png;base64,{result['thumbnail_png_b64']}"
        line.update({k: _cell(v) for k, v in result.items() if k not in HIDDEN_COLUMNS and k != "name"})
        table.append(line)
    return pd.DataFrame(table)


def result_details(services: Services, job_id: str) -> dict[str, dict]:
    """Full results per file name, hidden columns included (thumbnails, full text); built once per job version."""
    from streamlit_app.job_cache import cached

    return cached(services.store, job_id, "file_details", lambda: {
        (row.get("result") or {}).get("name", str(row["idx"])): row.get("result") or {}
        for row in services.store.item_rows(job_id, status="completed")})


def stored_file_bytes(services: Services, job_id: str, name: str) -> bytes | None:
    """The uploaded bytes of one file of the job (for detail views such as a waveform)."""
    for _, item in _inputs(services, job_id):
        if item.get("name") == name and not item.get("rejected"):
            return services.storage.read(item)
    return None


def _inputs(services: Services, job_id: str) -> list[tuple[int, dict]]:
    return [(row["idx"], row["input"]) for row in services.store.item_rows(job_id)]


def _reason(error: str | None) -> str:
    if not error:
        return ""
    kind, _, message = error.partition(": ")
    return message if kind in ("BadFileError", "ValueError") and message else error


def _cell(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}={v}" for k, v in value.items())
    return value


def near_duplicate_images(services: Services, job_id: str, max_distance: int = 8) -> list[list[dict]]:
    """Groups of look-alike images (perceptual hashes), each file with its thumbnail; once per job version."""
    from streamlit_app.job_cache import cached

    return cached(services.store, job_id, f"similar_images:{max_distance}",
                  lambda: _near_duplicate_images(services, job_id, max_distance))


def _near_duplicate_images(services: Services, job_id: str, max_distance: int) -> list[list[dict]]:
    from streamlit_app.image import near_duplicate_groups

    details = result_details(services, job_id)
    groups = near_duplicate_groups({name: row.get("phash", "") for name, row in details.items()}, max_distance)
    return [[{"name": name, "thumbnail_png_b64": details[name].get("thumbnail_png_b64", "")} for name in group]
            for group in groups]


def near_duplicate_text_pairs(services: Services, job_id: str, threshold: float = 0.8) -> pd.DataFrame:
    """Pairs of texts whose TF-IDF cosine similarity reaches the threshold; once per job version."""
    from streamlit_app.job_cache import cached

    return cached(services.store, job_id, f"similar_texts:{threshold}",
                  lambda: _near_duplicate_text_pairs(services, job_id, threshold))


def _near_duplicate_text_pairs(services: Services, job_id: str, threshold: float) -> pd.DataFrame:
    from streamlit_app.text import near_duplicate_texts

    texts = {name: row.get("text", "") for name, row in result_details(services, job_id).items() if row.get("text")}
    pairs = near_duplicate_texts(texts, threshold)
    return pd.DataFrame(pairs, columns=["first", "second", "similarity"])
