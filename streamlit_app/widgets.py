"""The shared Streamlit widgets: the only module outside pages/ and app.py that imports streamlit.

Holds the cached handles (services, manager), who the user is, the progress
bridge that polls a job from a fragment, the performance-settings panel and the
result table with downloads. Worker threads never call anything here.
"""
from __future__ import annotations

import json
import uuid
from typing import Any, Callable

import pandas as pd
import streamlit as st

from streamlit_app.validation.export import to_csv_bytes
from utils.services import Services, open_services
from utils.task_queue import AsyncTaskQueue
from utils.threading_manager import ThreadingManager

POLL_EVERY = "1s"


# ---------------------------------------------------------------- cached handles
@st.cache_resource(show_spinner=False, on_release=lambda s: s.close())
def get_services() -> Services:
    return open_services()


def get_manager() -> ThreadingManager:
    """The one shared manager (owned by the cached services; shut down at exit)."""
    return get_services().manager


def get_async_queue() -> AsyncTaskQueue:
    return get_services().queue


def current_user() -> str:
    """The fair-share key: the signed-in user, or an id kept in the URL so a reload keeps it."""
    try:
        if st.user.get("is_logged_in"):
            return str(st.user.get("email") or st.user.get("sub"))
    except Exception:  # noqa: BLE001 - auth not configured
        pass
    user = st.query_params.get("user")
    if not user:
        user = st.session_state.get("spindle_user") or uuid.uuid4().hex[:12]
        st.query_params["user"] = user
    st.session_state["spindle_user"] = user
    _session_presence(user)
    return user


class _Presence:
    """This tab's share of the manager: released when the tab closes or reloads."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        get_manager().set_owner_present(owner, True)

    def release(self) -> None:
        get_manager().set_owner_present(self.owner, False)


@st.cache_resource(scope="session", on_release=lambda presence: presence.release(), show_spinner=False)
def _session_presence(owner: str) -> _Presence:
    return _Presence(owner)


# ---------------------------------------------------------------- progress bridge
def job_key(page: str) -> str:
    return f"{page}_job_id"


def remember_job(page: str, job_id: str) -> None:
    st.session_state[job_key(page)] = job_id


def active_job_id(page: str, kind: str) -> str | None:
    """This session's job for the page; after a reload, the user's latest job of that kind."""
    job_id = st.session_state.get(job_key(page))
    if job_id:
        return job_id
    latest = get_async_queue().jobs_for(current_user(), kind=kind, limit=1)
    if latest:
        st.session_state[job_key(page)] = latest[0]["id"]
        return latest[0]["id"]
    return None


def _progress_body(job_id: str, on_finish_rerun: bool) -> dict | None:
    queue = get_async_queue()
    status = queue.get_status(job_id)
    if status is None:
        st.info("That job is no longer in the store.")
        return None
    total, done, failed = status["total"], status["done"], status["failed"]
    state = status["status"]
    label = f"{done:,} of {total:,} items · {failed:,} failed"
    if state in ("pending", "running"):
        eta = status.get("eta")
        extra = f" · about {eta:.0f}s left" if eta else ""
        st.progress(min(1.0, status["fraction"]), text=f"Running: {label}{extra}")
        cols = st.columns([1, 3])
        if cols[0].button("Cancel job", key=f"cancel_{job_id}", icon=":material/cancel:"):
            queue.cancel(job_id)
        reason = status.get("backend_reason")
        if reason:
            cols[1].caption(f"Backend: {status.get('backend_used')} — {reason}")
        seen = st.session_state.setdefault("spindle_running_jobs", set())
        seen.add(job_id)
    else:
        st.progress(1.0, text=f"{state.capitalize()}: {label}")
        seen = st.session_state.setdefault("spindle_running_jobs", set())
        if on_finish_rerun and job_id in seen:
            seen.discard(job_id)
            st.rerun(scope="app")
    return status


def job_progress(job_id: str) -> dict | None:
    """Polls the job every second from a fragment; reruns the page once when it finishes."""

    @st.fragment(run_every=POLL_EVERY)
    def poll() -> None:
        _progress_body(job_id, on_finish_rerun=True)

    poll()
    return get_async_queue().get_status(job_id)


def streamlit_threaded_operation(fn: Callable[[], Any], progress_text: str = "Working…",
                                 success_text: str = "Done.", pool: str = "default") -> Any:
    """Run one long call on the manager while the page shows a spinner; show the result or a clear error."""
    future = get_manager().submit_task(fn, task_name=getattr(fn, "__name__", "operation"), pool=pool)
    with st.spinner(progress_text):
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 - shown to the person, not raised
            st.error(f"{type(exc).__name__}: {exc}")
            return None
    st.success(success_text)
    return result


def file_batch_input(page: str, kind: str, analyser: str, options: dict, samples: Callable[[], list],
                     accepted: str, exec_kind: str = "auto", pool: str | None = None) -> str | None:
    """Upload box and sample button; starting a batch stores the files and starts a durable job."""
    from streamlit_app import file_jobs

    services = get_services()
    limits = services.settings
    st.caption(f"Accepts {accepted}. Up to {limits.max_files_per_upload:,} files of at most "
               f"{limits.max_upload_mb} MB each; a file that cannot be read gets a row with the reason.")
    uploaded = st.file_uploader(f"Drop {kind} files here", accept_multiple_files=True, key=f"{page}_upload")
    cols = st.columns([1, 1, 3])
    start = cols[0].button("Analyse files", type="primary", disabled=not uploaded, key=f"{page}_start",
                           icon=":material/play_arrow:")
    sample = cols[1].button("Try it with sample files", key=f"{page}_samples", icon=":material/science:")
    if start or sample:
        files = [(f.name, f.getvalue()) for f in uploaded] if start else list(samples())
        with st.spinner(f"Storing {len(files)} files…"):
            job_id = file_jobs.start_file_job(services, current_user(), kind, files, analyser, options,
                                              exec_kind=exec_kind, pool=pool)
        remember_job(page, job_id)
    return active_job_id(page, kind)


def file_results(page: str, job_id: str | None, empty_text: str,
                 summary_figure: Callable[[pd.DataFrame], Any]) -> pd.DataFrame | None:
    """Progress, the results table with downloads and a summary chart; returns the rows that succeeded."""
    from streamlit_app import file_jobs

    if job_id is None:
        st.info(empty_text)
        return None
    job_progress(job_id)
    table = file_jobs.results_frame(get_services(), job_id)
    if table.empty:
        return None
    st.subheader("Results")
    result_table(table, f"spindle-{page}", key=f"{page}_results")
    ok = table[table["status"] == "ok"]
    if not ok.empty:
        st.plotly_chart(summary_figure(ok), key=f"{page}_summary")
    return ok


# ---------------------------------------------------------------- performance settings
def performance_settings_panel(pool: str, key: str, expanded: bool = False,
                               max_workers: int = 16, chunk_range: tuple[int, int] = (10, 200)) -> None:
    """Parallel on/off, workers and chunk size for one pool of the shared manager."""
    manager = get_manager()
    current = manager.pool_settings(pool)
    with st.expander(f"Performance settings · pool “{pool}” ({current['kind']})", expanded=expanded):
        st.caption("These settings retune the shared manager live: they affect every user of this server.")
        parallel = st.toggle("Parallel processing", value=current["parallel"], key=f"{key}_parallel")
        workers = st.slider("Workers", 1, max(max_workers, current["workers"]), current["workers"],
                            key=f"{key}_workers")
        auto = st.checkbox("Size chunks automatically (from measured chunk times)",
                           value=current["chunk_size"] is None, key=f"{key}_auto")
        low, high = chunk_range
        chunk_default = min(max(current["chunk_size"] or 50, low), high)
        chunk = st.slider("Chunk size (items)", low, high, chunk_default, key=f"{key}_chunk", disabled=auto)
        if st.button("Apply", key=f"{key}_apply", icon=":material/tune:"):
            manager.configure(pool, workers=workers, chunk_size=None if auto else chunk, parallel=parallel)
            st.toast(f"Pool “{pool}”: {workers} workers, chunk size {'auto' if auto else chunk}, "
                     f"parallel {'on' if parallel else 'off'}")


# ---------------------------------------------------------------- results
def result_table(df: pd.DataFrame, file_stem: str, key: str, filter_column: str | None = "status",
                 excel: Callable[[pd.DataFrame], bytes] | None = None) -> pd.DataFrame:
    """A filterable table with CSV/JSON (and optionally Excel) downloads of what is shown."""
    if df.empty:
        st.info("No results yet.")
        return df
    shown = df
    cols = st.columns([2, 3])
    if filter_column and filter_column in df.columns:
        options = sorted(str(v) for v in df[filter_column].dropna().unique())
        chosen = cols[0].multiselect(f"Filter by {filter_column}", options, key=f"{key}_filter",
                                     placeholder="All")
        if chosen:
            shown = shown[shown[filter_column].astype(str).isin(chosen)]
    text = cols[1].text_input("Search", key=f"{key}_search", placeholder="Type to filter rows")
    if text:
        mask = shown.astype(str).apply(lambda col: col.str.contains(text, case=False, regex=False)).any(axis=1)
        shown = shown[mask]
    st.dataframe(shown, width="stretch", hide_index=True)
    st.caption(f"{len(shown):,} of {len(df):,} rows")
    buttons = st.columns(3)
    buttons[0].download_button("Download CSV", lambda: to_csv_bytes(shown), f"{file_stem}.csv", "text/csv",
                               key=f"{key}_csv", icon=":material/download:")  # formula-safe cells
    buttons[1].download_button("Download JSON", json.dumps(shown.to_dict(orient="records"), default=str,
                                                           indent=1).encode("utf-8"),
                               f"{file_stem}.json", "application/json", key=f"{key}_json")
    if excel is not None:
        # A callable is only run on click: writing .xlsx costs ~2 s per 1,000 rows, too much for every rerun.
        buttons[2].download_button("Download Excel", lambda: excel(shown), f"{file_stem}.xlsx",
                                   "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                                   key=f"{key}_xlsx")
    return shown


def page_header(title: str, caption: str | None = None) -> None:
    """Every page starts here: it keeps app.py's navigation in charge, then shows the title."""
    _ensure_navigation()
    st.title(title)
    if caption:
        st.caption(caption)


def _ensure_navigation() -> None:
    """Streamlit treats a pages/ folder as its legacy layout until app.py's st.navigation has run once
    in the process, so a first visit straight to /performance would skip app.py: switch and rerun."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        if not st.session_state.get("_spindle_navigation_ready"):  # once: a rerun drops a pending click
            st.session_state["_spindle_navigation_ready"] = True
            st.rerun()


def cluster_panel() -> None:
    """Where the cpu pool's chunks run: this machine, or a Dask cluster (with its figures)."""
    from utils.dask_backend import cluster_info

    services = get_services()
    status = services.dask
    if status is None:
        st.caption("CPU-bound chunks run in this machine's process pool. Set DASK_SCHEDULER_ADDRESS to send "
                   "them to a Dask cluster instead (see the README).")
        return
    if not status.connected:
        st.warning(status.message, icon=":material/cloud_off:")
        return
    info = cluster_info(services.manager)
    if info is None or info.get("error"):
        st.warning((info or {}).get("error") or "The Dask cluster is gone; work runs on the local pools.")
        return
    cols = st.columns(4)
    cols[0].metric("Cluster workers", info["workers"])
    cols[1].metric("Threads", info["threads"])
    cols[2].metric("Memory used", f"{(info['memory_used_bytes'] or 0) / 2**30:.1f} / "
                                  f"{(info['memory_limit_bytes'] or 0) / 2**30:.1f} GiB")
    cols[3].metric("Chunks in flight", f"{info['in_flight']} / {info['max_in_flight']}")
    if info.get("dashboard_link"):
        st.link_button("Open the Dask dashboard", info["dashboard_link"], icon=":material/open_in_new:")
    st.caption(f"Cluster at {info['address']}. On a cluster the cpu pool's Workers slider sets how many chunks "
               "Spindle keeps in flight there (it cannot add machines); chunk size works as on local pools.")


def sidebar() -> None:
    services = get_services()
    user = current_user()
    with st.sidebar:
        st.caption(f"Signed in as session **{user}**")
        metrics = services.manager.metrics()
        busy = sum(p["busy"] for p in metrics["pools"].values())
        st.caption(f"Store: {services.store.backend} · workers busy: {busy}")
        if metrics["memory_held"]:
            st.warning("Memory is low: new chunks are held back until it frees up.")
