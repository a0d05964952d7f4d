"""Application settings read once from the environment, secrets.toml and a profile.

Precedence, highest first: environment variables, `.streamlit/secrets.toml`,
the profile's defaults (development, production, cloud), built-in defaults.
Every default works offline on one machine with SQLite under `data/`.
"""
from __future__ import annotations

import os
import tomllib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROFILES = ("development", "production", "cloud")

# Profile defaults only name what differs from the built-in defaults.
PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "development": {"DEBUG_THREADING": "false", "ENABLE_PERFORMANCE_LOGGING": "true"},
    "production": {"ENABLE_PERFORMANCE_LOGGING": "false", "MAX_FILES_PER_UPLOAD": "500"},
    "cloud": {"MAX_UPLOAD_MB": "50", "MAX_FILES_PER_UPLOAD": "100", "MAX_WORKERS_PER_USER": "2"},
}


def _read_secrets(path: Path) -> dict[str, str]:
    """Flatten secrets.toml into UPPER_CASE keys, so secrets and env share names."""
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        warnings.warn(f"{path}: cannot read secrets ({exc}); ignoring the file")
        return {}
    flat: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            for sub, sub_value in value.items():
                flat[f"{key}_{sub}".upper()] = str(sub_value)
        else:
            flat[key.upper()] = str(value)
    return flat


def raw_values(env: Mapping[str, str] | None = None, secrets_path: Path | None = None) -> dict[str, str]:
    """All configuration values as strings, merged by precedence."""
    env = dict(os.environ if env is None else env)
    secrets = _read_secrets(secrets_path or PROJECT_ROOT / ".streamlit" / "secrets.toml")
    profile = (env.get("SPINDLE_PROFILE") or secrets.get("SPINDLE_PROFILE") or "development").lower()
    if profile not in PROFILES:
        warnings.warn(f"SPINDLE_PROFILE={profile!r} is not one of {PROFILES}; using 'development'")
        profile = "development"
    merged: dict[str, str] = {"SPINDLE_PROFILE": profile}
    merged.update(PROFILE_DEFAULTS[profile])
    merged.update(secrets)
    merged.update({k: v for k, v in env.items() if v != ""})
    merged["SPINDLE_PROFILE"] = profile  # the validated, lower-cased name
    return merged


def parse_int(values: Mapping[str, str], name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    """An integer setting; a bad value warns, naming the variable, and falls back to the default."""
    text = values.get(name)
    if text is None:
        return default
    try:
        number = int(str(text).strip())
    except ValueError:
        warnings.warn(f"{name}={text!r} is not a whole number; using the default {default}")
        return default
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        warnings.warn(f"{name}={number} is outside {bound}; using the default {default}")
        return default
    return number


def parse_float(values: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    """A number setting; a bad value warns, naming the variable, and falls back to the default."""
    text = values.get(name)
    if text is None:
        return default
    try:
        number = float(str(text).strip())
    except ValueError:
        warnings.warn(f"{name}={text!r} is not a number; using the default {default}")
        return default
    if number < minimum:
        warnings.warn(f"{name}={number} is below {minimum}; using the default {default}")
        return default
    return number


def parse_bool(values: Mapping[str, str], name: str, default: bool) -> bool:
    """A yes/no setting; a bad value warns, naming the variable, and falls back to the default."""
    text = values.get(name)
    if text is None:
        return default
    lowered = str(text).strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    warnings.warn(f"{name}={text!r} is not true/false; using the default {default}")
    return default


@dataclass(frozen=True)
class Settings:
    """What the app needs to know about its surroundings."""

    profile: str = "development"
    data_dir: Path = PROJECT_ROOT / "data"
    database_url: str = ""  # empty: SQLite file under data_dir
    supabase_url: str = ""
    supabase_key: str = ""
    supabase_bucket: str = "spindle-uploads"
    google_maps_api_key: str = ""
    google_maps_base_url: str = ""  # empty: Google's own endpoint
    geocode_qps: float = 10.0
    dask_scheduler_address: str = ""
    max_upload_mb: int = 200
    max_files_per_upload: int = 1000
    max_workers_per_user: int = 4
    max_total_workers: int = 32
    default_region: str = "US"
    # Trust (issue 9): admins by e-mail when sign-in is on; the token that unlocks retuning without sign-in.
    admins: tuple[str, ...] = ()
    admin_token: str = ""
    # Queue intake (issue 14), the owner's names: no URL means the intake is off.
    rabbitmq_url: str = ""
    voice_processing_queue: str = "voice_processing"
    rabbitmq_prefetch_count: int = 0  # 0: follow the intake pool's worker count live
    # Durable queue (issues 9 and 10): job leases between servers, the save buffer, whose history duplicates see.
    lease_seconds: float = 30.0
    save_buffer_rows: int = 20000
    shared_history: bool = False
    # Hostile input (issue 10): sizes checked before anything is decoded or stored. Defaults keep one item
    # under max_memory_per_task_mb; see load_settings for how each follows from it.
    max_memory_per_task_mb: int = 512
    max_decoded_mb: int = 128
    max_image_pixels: int = 44_739_242
    max_image_frames: int = 1000
    max_audio_channels: int = 32
    max_zip_part_mb: int = 64
    max_zip_ratio: int = 100
    max_zip_entries: int = 10_000
    max_text_chars: int = 33_554_432
    max_pdf_pages: int = 5000
    max_batch_mb: int = 1024
    max_sheet_mb: int = 50
    max_sheet_rows: int = 250_000
    max_sheet_columns: int = 500
    max_sheet_cells: int = 2_500_000
    # Benchmarks (issue 13): a file that gets one JSON line of server time per rerun; empty: nothing is timed.
    rerun_log: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "spindle.sqlite3"


def load_settings(env: Mapping[str, str] | None = None, secrets_path: Path | None = None) -> Settings:
    """Read settings fresh; callers that need one shared copy keep it themselves."""
    values = raw_values(env, secrets_path)
    data_dir = Path(values.get("SPINDLE_DATA_DIR") or PROJECT_ROOT / "data")
    return Settings(
        profile=values["SPINDLE_PROFILE"],
        data_dir=data_dir,
        database_url=values.get("DATABASE_URL", ""),
        supabase_url=values.get("SUPABASE_URL", ""),
        supabase_key=values.get("SUPABASE_KEY", ""),
        supabase_bucket=values.get("SUPABASE_BUCKET", "spindle-uploads"),
        google_maps_api_key=values.get("GOOGLE_MAPS_API_KEY", ""),
        google_maps_base_url=values.get("GOOGLE_MAPS_BASE_URL", ""),
        geocode_qps=parse_float(values, "GEOCODE_QPS", 10.0, minimum=0.1),
        dask_scheduler_address=values.get("DASK_SCHEDULER_ADDRESS", ""),
        max_upload_mb=parse_int(values, "MAX_UPLOAD_MB", 200, minimum=1),
        max_files_per_upload=parse_int(values, "MAX_FILES_PER_UPLOAD", 1000, minimum=1),
        max_workers_per_user=parse_int(values, "MAX_WORKERS_PER_USER", 4, minimum=1),
        max_total_workers=parse_int(values, "MAX_TOTAL_WORKERS", 32, minimum=1),
        rabbitmq_url=values.get("RABBITMQ_URL", ""),
        voice_processing_queue=values.get("VOICE_PROCESSING_QUEUE", "voice_processing"),
        rabbitmq_prefetch_count=parse_int(values, "RABBITMQ_PREFETCH_COUNT", 0, minimum=0, maximum=65535),
        default_region=values.get("DEFAULT_PHONE_REGION", "US").upper(),
        admins=tuple(sorted({a.strip().lower() for a in values.get("SPINDLE_ADMINS", "").split(",") if a.strip()})),
        admin_token=values.get("SPINDLE_ADMIN_TOKEN", ""),
        lease_seconds=parse_float(values, "SPINDLE_LEASE_SECONDS", 30.0, minimum=0.5),
        save_buffer_rows=parse_int(values, "SPINDLE_SAVE_BUFFER_ROWS", 20000, minimum=1),
        shared_history=parse_bool(values, "SPINDLE_SHARED_HISTORY", False),
        **_hostile_input_limits(values),
        rerun_log=values.get("SPINDLE_RERUN_LOG", ""),
        extra=values,
    )


# ---------------------------------------------------------------- hostile input limits (issue 10)
def _hostile_input_limits(values: Mapping[str, str]) -> dict[str, int]:
    """Decode and upload limits. Analysis holds about four working copies of what it decodes (8-bit RGB,
    grey, float32 samples, their mono mix), so a decoded payload of a quarter of MAX_MEMORY_PER_TASK_MB
    keeps one item under it; 8-bit RGB pixels (3 bytes each) follow from that, text from 16 bytes a character."""
    memory = parse_int(values, "MAX_MEMORY_PER_TASK_MB", 512, minimum=16)
    decoded = parse_int(values, "MAX_DECODED_MB", max(1, memory // 4), minimum=1)
    return {
        "max_memory_per_task_mb": memory,
        "max_decoded_mb": decoded,
        "max_image_pixels": parse_int(values, "MAX_IMAGE_PIXELS", decoded * 1024 * 1024 // 3, minimum=1),
        "max_image_frames": parse_int(values, "MAX_IMAGE_FRAMES", 1000, minimum=1),
        "max_audio_channels": parse_int(values, "MAX_AUDIO_CHANNELS", 32, minimum=1),
        "max_zip_part_mb": parse_int(values, "MAX_ZIP_PART_MB", max(1, memory // 8), minimum=1),
        "max_zip_ratio": parse_int(values, "MAX_ZIP_RATIO", 100, minimum=2),
        "max_zip_entries": parse_int(values, "MAX_ZIP_ENTRIES", 10_000, minimum=1),
        "max_text_chars": parse_int(values, "MAX_TEXT_CHARS", memory * 1024 * 1024 // 16, minimum=1),
        "max_pdf_pages": parse_int(values, "MAX_PDF_PAGES", 5000, minimum=1),
        "max_batch_mb": parse_int(values, "MAX_BATCH_MB", 1024, minimum=1),
        "max_sheet_mb": parse_int(values, "MAX_SHEET_MB", 50, minimum=1),
        "max_sheet_rows": parse_int(values, "MAX_SHEET_ROWS", 250_000, minimum=1),
        "max_sheet_columns": parse_int(values, "MAX_SHEET_COLUMNS", 500, minimum=1),
        "max_sheet_cells": parse_int(values, "MAX_SHEET_CELLS", 2_500_000, minimum=1),
    }
