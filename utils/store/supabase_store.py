"""The Supabase backend: the same tables reached through Supabase's REST API (PostgREST) and Storage.

Use it when only SUPABASE_URL and SUPABASE_KEY are known (e.g. Streamlit Cloud).
Supabase is PostgreSQL, so with its direct connection string in DATABASE_URL the
PostgreSQL backend is faster (COPY) and creates the schema itself; through the
REST API the schema must already exist: run `schema_sql("postgres")` from
utils/store/base.py once in the Supabase SQL editor.

No Supabase server can run on the development machines (no Docker, no package),
so the tests drive this module through the real `supabase` client against
tests/fixtures/supabase_server.py, a local HTTP server that answers the same
PostgREST and Storage requests: the HTTP boundary is what is tested.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence, cast

from postgrest.exceptions import APIError
from storage3.exceptions import StorageApiError
from supabase import Client, create_client

from utils.store.base import (
    DONE_STATUSES,
    FAILED_STATUSES,
    ITEM_STATUSES,
    JSON_COLUMNS,
    MIGRATIONS,
    FileRow,
    HistoryRow,
    ItemRow,
    JobRow,
    RunRow,
    Store,
    StoreError,
    check_job_fields,
    check_table_rows,
    file_row,
    new_job_row,
    now,
    plain_json,
    result_rows,
    run_row,
)

PAGE_ROWS = 1000  # Supabase returns at most 1000 rows per request by default
ITEMS_PER_REQUEST = 5000
UNIQUE_VIOLATION = "23505"


class SupabaseStore(Store):
    """Store in a Supabase project, through the `supabase` client."""

    backend = "supabase"

    def __init__(self, url: str, key: str, client: Client | None = None) -> None:
        self.client = client or create_client(url, key)
        self.client.postgrest  # build the shared REST client now, not racily in worker threads
        self._check_schema()

    def _check_schema(self) -> None:
        expected = len(MIGRATIONS["postgres"])
        hint = ("apply the schema once in the Supabase SQL editor (python -c \"from utils.store.base import "
                "schema_sql; print(schema_sql())\"), or set DATABASE_URL to the project's direct connection string")
        try:
            rows = self._table("schema_version").select("version").order("version", desc=True).limit(1).execute().data
        except APIError as exc:
            raise StoreError(f"the Supabase project has no Spindle schema ({exc.message}); {hint}") from exc
        found = rows[0]["version"] if rows else 0
        if found < expected:
            raise StoreError(f"the Supabase schema is at version {found}, Spindle needs {expected}; {hint}")

    def _table(self, name: str):  # -> SyncRequestBuilder
        return self.client.table(name)

    def _select_all(self, build: Callable[[], Any], limit: int | None = None, offset: int = 0) -> list[dict]:
        """Page through a select (the server caps rows per request); `build` must order by a unique key."""
        rows: list[dict] = []
        while limit is None or len(rows) < limit:
            want = PAGE_ROWS if limit is None else min(PAGE_ROWS, limit - len(rows))
            start = offset + len(rows)
            batch = build().range(start, start + want - 1).execute().data
            if not batch:
                break
            rows.extend(batch)
        return rows

    # --- jobs ----------------------------------------------------------------
    def create_job(self, job: dict) -> bool:
        row = new_job_row(job)
        row["params"] = plain_json(row["params"])
        try:
            self._table("jobs").insert(row, returning="minimal").execute()
        except APIError as exc:
            if exc.code == UNIQUE_VIOLATION:
                return False
            raise
        return True

    def find_job_by_key(self, owner: str, idem_key: str) -> JobRow | None:
        rows = self._table("jobs").select("*").eq("owner", owner).eq("idem_key", idem_key).limit(1).execute().data
        return rows[0] if rows else None

    def get_job(self, job_id: str) -> JobRow | None:
        rows = self._table("jobs").select("*").eq("id", job_id).limit(1).execute().data
        return rows[0] if rows else None

    def list_jobs(self, owner: str | None = None, statuses: Sequence[str] | None = None,
                  kind: str | None = None, limit: int = 100) -> list[JobRow]:
        if statuses is not None and not statuses:
            return []

        def build():
            query = self._table("jobs").select("*")
            if owner is not None:
                query = query.eq("owner", owner)
            if statuses is not None:
                query = query.in_("status", list(statuses))
            if kind is not None:
                query = query.eq("kind", kind)
            return query.order("created_at", desc=True).order("id", desc=True)

        return cast("list[JobRow]", self._select_all(build, limit=int(limit)))

    def update_job(self, job_id: str, **fields: Any) -> None:
        check_job_fields(fields)
        fields.pop("id", None)
        if "params" in fields:
            fields["params"] = plain_json(fields["params"])
        if fields:
            self._table("jobs").update(fields, returning="minimal").eq("id", job_id).execute()

    # --- items ---------------------------------------------------------------
    def add_items(self, job_id: str, inputs: Iterable[tuple[int, Any]]) -> int:
        stamp = now()
        rows = [{"job_id": job_id, "idx": int(idx), "input": plain_json(value), "status": "pending", "attempts": 0,
                 "updated_at": stamp} for idx, value in inputs]
        added = 0
        for start in range(0, len(rows), ITEMS_PER_REQUEST):
            response = self._table("items").upsert(
                rows[start:start + ITEMS_PER_REQUEST], on_conflict="job_id,idx", ignore_duplicates=True,
                returning="minimal", count="exact",
            ).execute()
            added += response.count or 0
        return added

    def save_results(self, job_id: str, rows: Sequence[dict]) -> None:
        complete = [{**row, "result": plain_json(row["result"])} for row in result_rows(job_id, rows)]
        if complete:  # one request is one transaction in PostgREST
            self._table("items").upsert(complete, on_conflict="job_id,idx", returning="minimal").execute()
            self._recount(job_id)

    def _recount(self, job_id: str) -> dict[str, int]:
        """Counters from the items (best effort: REST has no transaction spanning requests, but counts only grow)."""
        counts = self.item_counts(job_id)
        done = sum(n for status, n in counts.items() if status in DONE_STATUSES)
        failed = sum(n for status, n in counts.items() if status in FAILED_STATUSES)
        self._table("jobs").update({"done": done, "failed": failed}, returning="minimal").eq("id", job_id).execute()
        return counts

    def pending_items(self, job_id: str) -> list[tuple[int, Any]]:
        rows = self._select_all(
            lambda: self._table("items").select("idx,input").eq("job_id", job_id).eq("status", "pending").order("idx")
        )
        return [(row["idx"], row["input"]) for row in rows]

    def item_rows(self, job_id: str, status: str | None = None, limit: int | None = None, offset: int = 0) -> list[ItemRow]:
        def build():
            query = self._table("items").select("*").eq("job_id", job_id)
            if status is not None:
                query = query.eq("status", status)
            return query.order("idx")

        return cast("list[ItemRow]", self._select_all(build, limit=limit, offset=int(offset)))

    def item_counts(self, job_id: str) -> dict[str, int]:
        counts = {}
        for status in ITEM_STATUSES:
            response = (self._table("items").select("idx", count="exact").eq("job_id", job_id)
                        .eq("status", status).limit(1).execute())
            counts[status] = response.count or 0
        return counts

    def cancel_pending(self, job_id: str, reason: str) -> int:
        response = (self._table("items")
                    .update({"status": "cancelled", "error": reason, "updated_at": now()}, count="exact", returning="minimal")
                    .eq("job_id", job_id).eq("status", "pending").execute())
        self._recount(job_id)
        return response.count or 0

    def fail_pending(self, job_id: str, reason: str) -> int:
        response = (self._table("items")
                    .update({"status": "failed", "error": reason, "updated_at": now()}, count="exact", returning="minimal")
                    .eq("job_id", job_id).eq("status", "pending").execute())
        self._recount(job_id)
        return response.count or 0

    def reopen_items(self, job_id: str, statuses: Sequence[str] = ("cancelled",)) -> int:
        response = (self._table("items")
                    .update({"status": "pending", "error": None, "result": None, "updated_at": now()}, count="exact",
                            returning="minimal")
                    .eq("job_id", job_id).in_("status", list(statuses)).execute())
        if response.count:
            self.update_job(job_id, status="pending", error="", finished_at=None)
            self._recount(job_id)
        return response.count or 0

    # --- finishing and leases (best effort: each request is atomic, the sequence is not) ----------
    def finish_job(self, job_id: str, status: str, **fields: Any) -> bool:
        check_job_fields({**fields, "status": status})
        counts = self._recount(job_id)
        if status == "completed" and counts.get("pending"):
            return False
        fields = {**fields, "status": status, "lease_owner": None, "lease_expires": None}
        fields.setdefault("finished_at", now())
        self._table("jobs").update(fields, returning="minimal").eq("id", job_id).execute()
        return True

    def claim_job(self, job_id: str, server: str, lease_s: float) -> bool:
        """Three conditional updates, each atomic: a free lease, our own, or an expired one."""
        stamp = now()
        fields = {"lease_owner": server, "lease_expires": stamp + lease_s}
        for condition in (lambda q: q.is_("lease_owner", "null"), lambda q: q.eq("lease_owner", server),
                          lambda q: q.lt("lease_expires", stamp)):
            query = self._table("jobs").update(fields, count="exact", returning="minimal").eq("id", job_id)
            if condition(query).execute().count:
                return True
        return False

    def claim_orphans(self, server: str, lease_s: float, limit: int = 100) -> list[JobRow]:
        claimed = []
        for job in reversed(self.list_jobs(statuses=["pending", "running"], limit=limit)):
            if job.get("lease_owner") is None and not self.item_counts(job["id"])["pending"]:
                continue  # never held by a queue, nothing to run: not ours (see base.UNFINISHED_JOB_SQL)
            if self.claim_job(job["id"], server, lease_s):
                claimed.append(self.get_job(job["id"]))
        return [job for job in claimed if job is not None]

    def release_lease(self, job_id: str, server: str) -> bool:
        response = (self._table("jobs").update({"lease_expires": 0}, count="exact",
                                               returning="minimal").eq("id", job_id).eq("lease_owner", server).execute())
        return bool(response.count)

    def renew_leases(self, job_ids: Sequence[str], server: str, lease_s: float) -> set[str]:
        return {job_id for job_id in job_ids if self.claim_job(job_id, server, lease_s)}

    # --- history -------------------------------------------------------------
    def add_history(self, records: Sequence[dict], source: str, owner: str = "") -> int:
        stamp = now()
        return self.insert_rows("history", [{"record": r, "source": source, "created_at": stamp, "owner": owner}
                                            for r in records])

    def history(self, limit: int | None = None, owner: str | None = None) -> list[HistoryRow]:
        def build():
            query = self._table("history").select("*")
            if owner is not None:
                query = query.eq("owner", owner)
            return query.order("id", desc=True)

        return cast("list[HistoryRow]", self._select_all(build, limit=limit))

    # --- files ---------------------------------------------------------------
    def add_file(self, meta: dict) -> None:
        self._table("files").upsert(file_row(meta), on_conflict="id", ignore_duplicates=True, returning="minimal").execute()

    def get_file(self, file_id: str) -> FileRow | None:
        rows = self._table("files").select("*").eq("id", file_id).limit(1).execute().data
        return rows[0] if rows else None

    # --- cache ---------------------------------------------------------------
    def cache_get(self, namespace: str, key: str) -> Any | None:
        rows = self._table("cache").select("value").eq("namespace", namespace).eq("key", key).limit(1).execute().data
        return rows[0]["value"] if rows else None

    def cache_put(self, namespace: str, key: str, value: Any) -> None:
        row = {"namespace": namespace, "key": key, "value": plain_json(value), "updated_at": now()}
        self._table("cache").upsert(row, on_conflict="namespace,key", returning="minimal").execute()

    # --- runs ----------------------------------------------------------------
    def record_run(self, run: dict) -> None:
        self._table("runs").insert(run_row(run), returning="minimal").execute()

    def runs(self, limit: int = 1000) -> list[RunRow]:
        return cast("list[RunRow]",
                    self._select_all(lambda: self._table("runs").select("*").order("id", desc=True), limit=int(limit)))

    # --- db_ops helpers --------------------------------------------------------
    def insert_rows(self, table: str, rows: Sequence[dict]) -> int:
        """Insert in one request (one transaction); returns the row count."""
        check_table_rows(table, rows)
        json_columns = JSON_COLUMNS.get(table, set())
        if rows:
            plain = [{c: plain_json(v) if c in json_columns else v for c, v in row.items()} for row in rows]
            self._table(table).insert(plain, returning="minimal").execute()
        return len(rows)

    def close(self) -> None:
        self.client.postgrest.aclose()  # despite the name, closes the sync HTTP session


class SupabaseBucket:
    """Write-once object storage in a Supabase Storage bucket (used by smart_storage)."""

    def __init__(self, client: Client, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def upload(self, key: str, data: bytes) -> None:
        """Store the bytes under key; an object already there is kept (keys are content hashes)."""
        try:
            self.client.storage.from_(self.bucket).upload(
                key, data, file_options={"content-type": "application/octet-stream", "upsert": "false"}
            )
        except StorageApiError as exc:
            if exc.code != "Duplicate" and str(exc.status) != "409":
                raise

    def download(self, key: str) -> bytes:
        return self.client.storage.from_(self.bucket).download(key)


def open_bucket(url: str, key: str, bucket: str, store: Store | None = None) -> SupabaseBucket:
    """A bucket handle, sharing the store's client when the store is Supabase too."""
    client = store.client if isinstance(store, SupabaseStore) else create_client(url, key)
    return SupabaseBucket(client, bucket)
