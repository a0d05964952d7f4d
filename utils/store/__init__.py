"""Persistent storage for Spindle: pick the backend from the settings.

DATABASE_URL=postgresql://... wins (a shared server, or Supabase's direct URL);
else SUPABASE_URL + SUPABASE_KEY use Supabase's REST API; else a SQLite file at
settings.sqlite_path, which works offline on one machine. The app keeps one
store (the lead's cached manager owns it); every method is thread-safe.
"""
from __future__ import annotations

from config.settings import Settings
from utils.store.base import ITEM_STATUSES, JOB_STATUSES, Store, StoreError, schema_sql

POSTGRES_SCHEMES = ("postgresql://", "postgres://")

__all__ = ["ITEM_STATUSES", "JOB_STATUSES", "Store", "StoreError", "backend_name", "open_store", "schema_sql"]


def backend_name(settings: Settings) -> str:
    """Which backend open_store would use: "postgres", "supabase" or "sqlite"."""
    if settings.database_url:
        if not settings.database_url.startswith(POSTGRES_SCHEMES):
            raise StoreError(
                f"DATABASE_URL must start with postgresql:// (got {settings.database_url.split(':', 1)[0]}://...); "
                "leave it empty to use the SQLite file"
            )
        return "postgres"
    if settings.supabase_url and settings.supabase_key:
        return "supabase"
    return "sqlite"


def open_store(settings: Settings) -> Store:
    """Open (and create or migrate) the store the settings point at."""
    backend = backend_name(settings)
    if backend == "postgres":
        from utils.store.postgres_store import PostgresStore

        return PostgresStore(settings.database_url)
    if backend == "supabase":
        from utils.store.supabase_store import SupabaseStore

        return SupabaseStore(settings.supabase_url, settings.supabase_key)
    from utils.store.sqlite_store import SQLiteStore

    return SQLiteStore(settings.sqlite_path)
