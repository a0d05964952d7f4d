"""Uploaded files as durable jobs: store each file once, analyse it in a worker, read the results back.

Shared by the Audio, Image and Text pages. A file the storage rejects (too large,
too many files) still becomes a row with its reason, so nothing silently disappears.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from config.settings import load_settings
from streamlit_app.media_errors import BadFileError
from utils.services import Services
from utils.smart_storage import SmartStorage
from utils.task_queue import resolve_function

FILE_JOB_FN = "streamlit_app.file_jobs:analyse_stored_file"
HIDDEN_COLUMNS = ("thumbnail_png_b64", "text")


def analyse_stored_file(item: dict, params: dict) -> dict:
    """Worker entry: read one stored upload and run the page's analyser on it."""
    if item.get("rejected"):
        raise BadFileError(item["rejected"])
    settings = dataclasses.replace(load_settings(), data_dir=Path(params["data_dir"]))
    data = SmartStorage(settings, store=None).read(item)  # type: ignore[arg-type]
    analyser = resolve_function(params["analyser"])
    return analyser(item["name"], data, params.get("options") or {})


def start_file_job(services: Services, owner: str, kind: str, files: Sequence[tuple[str, bytes]], analyser: str,
                   options: dict | None = None, exec_kind: str = "auto", pool: str | None = None) -> str:
    """Store the files (in parallel, on the upload pool) and start the durable analysis job."""
    saved, errors = services.storage.upload_multiple_files(owner, list(files), manager=services.manager)
    inputs: list[dict[str, Any]] = [
        {"file_id": m["id"], "name": m["name"], "path": m["path"], "sha256": m["sha256"], "storage": m["storage"]}
        for m in saved]
    inputs += [{"name": e["name"], "rejected": e["error"]} for e in errors]
    params = {"analyser": analyser, "options": options or {}, "data_dir": str(services.settings.data_dir)}
    return services.queue.submit_batch(FILE_JOB_FN, inputs, owner=owner, kind=kind, params=params,
                                       exec_kind=exec_kind, pool=pool)


def results_frame(services: Services, job_id: str) -> pd.DataFrame:
    """One row per file: its name, status and reason, then what the analyser found."""
    record = services.store.get_job(job_id)
    rows = services.store.item_rows(job_id)
    names = {}
    if record is not None:
        names = {idx: item.get("name") for idx, item in _inputs(services, job_id)}
    table = []
    for row in rows:
        result = row.get("result") or {}
        line = {"file": result.get("name") or names.get(row["idx"], f"item {row['idx']}"),
                "status": "ok" if row["status"] == "completed" else row["status"],
                "reason": _reason(row.get("error")),
                "ms": round(row["duration_ms"] or 0.0, 1) if row.get("duration_ms") is not None else None}
        line.update({k: _cell(v) for k, v in result.items() if k not in HIDDEN_COLUMNS and k != "name"})
        table.append(line)
    return pd.DataFrame(table)


def result_details(services: Services, job_id: str) -> dict[str, dict]:
    """Full results per file name, hidden columns included (thumbnails, full text)."""
    return {(row.get("result") or {}).get("name", str(row["idx"])): row.get("result") or {}
            for row in services.store.item_rows(job_id, status="completed")}


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
    """Groups of look-alike images (perceptual hashes), each file with its thumbnail."""
    from streamlit_app.image import near_duplicate_groups

    details = result_details(services, job_id)
    groups = near_duplicate_groups({name: row.get("phash", "") for name, row in details.items()}, max_distance)
    return [[{"name": name, "thumbnail_png_b64": details[name].get("thumbnail_png_b64", "")} for name in group]
            for group in groups]


def near_duplicate_text_pairs(services: Services, job_id: str, threshold: float = 0.8) -> pd.DataFrame:
    """Pairs of texts whose TF-IDF cosine similarity reaches the threshold."""
    from streamlit_app.text import near_duplicate_texts

    texts = {name: row.get("text", "") for name, row in result_details(services, job_id).items() if row.get("text")}
    pairs = near_duplicate_texts(texts, threshold)
    return pd.DataFrame(pairs, columns=["first", "second", "similarity"])
