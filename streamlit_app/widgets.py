"""The shared Streamlit widgets: the only module outside pages/ and app.py that imports streamlit.

Holds the cached handles (services, manager), who the user is, the progress
bridge that polls a job from a fragment, the performance-settings panel and the
result table with downloads. Worker threads never call anything here.
"""
from __future__ import annotations

import contextlib
import gc
import json
import logging
import re
import sys
import threading
import time
import uuid
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd
import streamlit as st

from config.settings import Settings, load_settings
from streamlit_app import identity, rerun_log
from streamlit_app.identity import Identity
from streamlit_app.jobs import JobDoor, JobNotFound, NotAllowed
from streamlit_app.validation.export import to_csv_bytes
from utils import redact
from utils import services as process_services
from utils.services import Services
from utils.task_queue import AsyncTaskQueue
from utils.threading_manager import ThreadingManager

# ---------------------------------------------------------------- cached handles
@st.cache_resource(show_spinner=False, on_release=lambda _s: process_services.close_services())
def get_services() -> Services:
    """The process-wide services (utils.services.get_services): the same queue a script or worker gets, and
    opening them starts the RabbitMQ intake when RABBITMQ_URL is set."""
    return process_services.get_services()


def get_manager() -> ThreadingManager:
    """The one shared manager (owned by the cached services; shut down at exit)."""
    return get_services().manager


def get_async_queue() -> AsyncTaskQueue:
    return get_services().queue


def door() -> JobDoor:
    """The one door every page goes through for job actions (streamlit_app/jobs.py), over the cached services."""
    services = get_services()
    return _door_for(id(services), services)


@st.cache_resource(show_spinner=False, max_entries=4)
def _door_for(services_id: int, _services: Services) -> JobDoor:
    # Keyed by the services' identity: when the services are rebuilt, a new door comes with them.
    return JobDoor(_services)


# ---------------------------------------------------------------- identity (who the visitor is)
log = logging.getLogger("spindle.pages")
IDENTITY_PARAM = "user"  # the anonymous visitor's signed token lives in the URL: whoever has the link is them
ADMIN_PROVED = "spindle_admin_proved"


@st.cache_resource(show_spinner=False)
def _trust_setup() -> Settings:
    """Once per server, before anything can fail: every configured secret masked in the log, a log handler.

    Reads the settings itself: when the store cannot open (a malformed DATABASE_URL), the services never exist,
    and the error that says so must already be masked."""
    settings = load_settings()
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    redact.add_secrets(redact.settings_secrets(settings))
    redact.install_log_redaction()
    return settings


@st.cache_resource(show_spinner=False)
def _server_secret(data_dir: str) -> bytes:
    return identity.server_secret(Path(data_dir))


def rerun_log_path() -> str:
    """Where app.py and the progress fragment append their server time per run (SPINDLE_RERUN_LOG); "" is off."""
    return _trust_setup().rerun_log


def sign_in_configured() -> bool:
    """Sign-in mode: an [auth] section in Streamlit's secrets (any secrets.toml Streamlit reads)."""
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets file at all
        return False


def current_identity() -> Identity:
    """Who is asking: the signed-in user (provider subject), or this browser's signed anonymous id.

    In sign-in mode a visitor who is not signed in sees the sign-in screen and nothing else (st.stop).
    """
    _trust_setup()
    settings = get_services().settings
    if sign_in_configured():
        if not st.user.is_logged_in:
            _sign_in_screen()
            st.stop()
        verified = st.user.get("email_verified")
        who = identity.signed_in_identity(str(st.user.get("sub") or ""), st.user.get("email"), settings.admins,
                                          email_verified=None if verified is None else bool(verified))
    else:
        who = identity.anonymous_identity(_anonymous_owner(settings), identity.anonymous_may_retune(
            settings.admin_token, bool(st.session_state.get(ADMIN_PROVED))))
    _session_presence(who.owner_id, who)
    return who


def current_user() -> str:
    """The caller's owner id (the fair-share key); pages pass current_identity() to the door instead."""
    return current_identity().owner_id


def _anonymous_owner(settings: Settings) -> str:
    """This browser's owner id: the signed token kept in the session and the URL; anything else gets a fresh one."""
    secret = _server_secret(str(settings.data_dir))
    token = st.session_state.get("spindle_user")
    owner = identity.verify_anonymous_token(secret, token)
    if owner is None:
        token = st.query_params.get(IDENTITY_PARAM)
        owner = identity.verify_anonymous_token(secret, token)
    if owner is None:  # none yet, typed by hand or tampered with: a fresh identity, never the one offered
        token = identity.new_anonymous_token(secret)
        owner = identity.verify_anonymous_token(secret, token)
    assert owner is not None and token is not None
    st.session_state["spindle_user"] = token
    if st.query_params.get(IDENTITY_PARAM) != token:
        st.query_params[IDENTITY_PARAM] = token
    return owner


def _sign_in_screen() -> None:
    st.title("Spindle")
    st.write("This server asks you to sign in first: your jobs, files and history are yours alone.")
    if st.button("Sign in", type="primary", icon=":material/login:", key="spindle_sign_in"):
        st.login()


def admin_unlock(who: Identity, key: str) -> Identity:
    """Without sign-in and with SPINDLE_ADMIN_TOKEN set, retuning asks for the token; returns who, maybe now admin."""
    settings = get_services().settings
    if who.is_admin or who.mode != "anonymous" or not settings.admin_token:
        return who
    typed = st.text_input("Admin token (to retune the shared pools)", type="password", key=f"{key}_admin_token")
    if typed:
        if identity.admin_token_matches(typed, settings.admin_token):
            st.session_state[ADMIN_PROVED] = True
            return current_identity()
        st.error("That is not the admin token.")
    return who


class _Presence:
    """This tab's share of the manager: released when the tab closes or reloads."""

    def __init__(self, who: Identity) -> None:
        self.who = who
        door().visitor_arrived(who)

    def release(self) -> None:
        door().visitor_left(self.who)


@st.cache_resource(scope="session", on_release=lambda presence: presence.release(), show_spinner=False)
def _session_presence(owner_id: str, _who: Identity) -> _Presence:
    return _Presence(_who)


# ---------------------------------------------------------------- error boundary
@contextlib.contextmanager
def error_boundary(where: str) -> Iterator[None]:
    """Visitors see a short message and an error id; the traceback (secrets masked) goes to the server log.

    st.stop/st.rerun/st.switch_page raise BaseExceptions, which pass through untouched.
    """
    try:
        yield
    except JobNotFound:
        st.info("That job is not here (it may belong to another visitor, or it was removed).",
                icon=":material/search_off:")
    except Exception:  # noqa: BLE001 - the boundary: nothing internal reaches the page
        error_id = uuid.uuid4().hex[:10]
        redact.install_log_redaction()  # handlers added since start (a test's log capture) are covered too
        log.exception("error %s on %s", error_id, where)
        st.error(f"Something went wrong here, and it was logged. If it keeps happening, tell the operator "
                 f"this error id: {error_id}", icon=":material/error:")


# ---------------------------------------------------------------- user text is text
_PLAIN_WORDS = re.compile(r"[A-Za-z][A-Za-z0-9 .,'()/%-]*")


def md_escape(text: object) -> str:
    """User text (a file name, a header, a cell, an error that quotes them) for a markdown string: an inline code
    span, so it shows exactly as typed, never as a link, image, HTML, LaTeX or :directive: (backslash escapes are
    not enough: GitHub-flavoured markdown links a bare http://… or www.… after unescaping)."""
    plain = " ".join(str(text).splitlines())
    if not plain.strip():
        return ""
    if _PLAIN_WORDS.fullmatch(plain) and "www." not in plain.lower():
        return plain  # letters, digits, spaces and .,'()/%- start nothing in markdown: "Phone", "requests-1.csv"
    fence = "`" * (max((len(run) for run in re.findall(r"`+", plain)), default=0) + 1)
    pad = " " if plain[0] == "`" or plain[-1] == "`" else ""
    return f"{fence}{pad}{plain}{pad}{fence}"


# ---------------------------------------------------------------- progress bridge
def job_key(page: str) -> str:
    return f"{page}_job_id"


def remember_job(page: str, job_id: str) -> None:
    st.session_state[job_key(page)] = job_id


def active_job_id(page: str, kind: str) -> str | None:
    """This session's job for the page (if it is still the caller's); after a reload, their latest of that kind."""
    who = current_identity()
    job_id = st.session_state.get(job_key(page))
    if job_id and door().owns(who, job_id):
        return job_id
    latest = door().latest_job(who, kind)
    if latest:
        st.session_state[job_key(page)] = latest
        return latest
    st.session_state.pop(job_key(page), None)
    return None


PREPARING_WAIT_S = 0.1  # a poll that sees its job finish waits this long for the finished page's results (1,000
# rows: built in well under it, so the page reruns at once), then polls them from a fragment
END_WATCH_S = 0.1  # how often a job that may end before its next poll is looked at (see _watch_the_end)


@dataclass(frozen=True)
class _ProgressView:
    """Whose job and how its end is shown (job_progress's arguments), for the fragments that poll and watch it."""

    who: Identity
    job_id: str
    ready: Callable[[], futures.Future] | None
    preparing_text: str
    timing_to: str  # the rerun log's path ("" is off) and the page's name in it
    page: str


def _draw_progress(view: _ProgressView, status: dict) -> None:
    """The progress line: a bar with done, failed and time left; Cancel while the job runs."""
    store_problem = door().store_problem()  # the store is away (stopped, disk full): results wait in memory
    if store_problem:
        st.warning(store_problem)
    state = status["status"]
    label = f"{status['done']:,} of {status['total']:,} items · {status['failed']:,} failed"
    if state not in ("pending", "running"):
        st.progress(1.0, text=f"{state.capitalize()}: {label}")
        return
    eta = status.get("eta")
    extra = f" · about {eta:.0f}s left" if eta else ""
    st.progress(min(1.0, status["fraction"]), text=f"Running: {label}{extra}")
    cols = st.columns([1, 3])
    if cols[0].button("Cancel job", key=f"cancel_{view.job_id}", icon=":material/cancel:"):
        door().cancel(view.who, view.job_id)
    reason = status.get("backend_reason")
    if reason:
        cols[1].caption(f"Backend: {status.get('backend_used')} — {reason}")


def _show_finished_when_ready(view: _ProgressView) -> None:
    """A poll saw the job this page watched end: rerun the page once its finished results are ready (`ready()`),
    so the first finished render neither waits for them nor shares the CPU with their build."""
    seen = st.session_state.setdefault("spindle_running_jobs", set())
    if view.job_id not in seen:
        return
    preparing = view.ready() if view.ready is not None else None
    if preparing is None or await_briefly(preparing, PREPARING_WAIT_S, lambda: view.preparing_text):
        seen.discard(view.job_id)
        st.rerun(scope="app")


def _watch_the_end(view: _ProgressView) -> None:
    """A job that may end before the next poll (just started, or its estimate left is under the interval): a small
    fragment reads its state every END_WATCH_S and draws nothing. Once the job has ended and the finished page's
    results are ready (`ready()`, awaited up to PREPARING_WAIT_S a look), it reruns the page: the finished page comes
    then, not up to a poll interval later. Results that take longer (100,000 rows) are left to the next poll, which
    shows the end and waits for them without a page run beside their build. The next poll drops the watcher, or
    draws it again while the job may still end before the one after.

    Why it does not draw the end itself: on its own runs Streamlit lets a fragment write only inside itself (the
    poll's progress line is outside it: StreamlitInvalidLayoutContextError), and a redraw every END_WATCH_S would
    take from the server and the browser the CPU the workers need.
    """

    @st.fragment(run_every=END_WATCH_S)
    def watch() -> None:
        with rerun_log.timed(view.timing_to, view.page, "fragment"), error_boundary("job progress"):
            current = door().status(view.who, view.job_id)
            rerun_log.note_job_state(current["status"] if current else None)
            if current is None or current["status"] in ("pending", "running"):
                return
            preparing = view.ready() if view.ready is not None else None
            if preparing is not None:
                futures.wait([preparing], timeout=PREPARING_WAIT_S)
            if preparing is None or preparing.done():
                st.rerun(scope="app")

    watch()


# How often a running job's progress is polled: every half second while a job may finish any moment, then backing
# off so a long job's page does not rerun every half second. (job running for less than s, poll every s)
# Why not faster at first: in Chromium on the 2-core machine each poll costs the server and the browser CPU that the
# workers need. Polls every 0.25 s for the first 3 s (then 0.5 s, after a full rerun to change the interval) made a
# 10,000-row run 0.9 s slower; for a job expected to end within 2 s, they made a 1,000-row run 0.3 s slower, not
# faster (benchmarks/bench_browser.py, side by side).
POLL_STEPS: tuple[tuple[float, float], ...] = ((10.0, 0.5), (60.0, 1.0), (300.0, 2.0), (float("inf"), 5.0))


def poll_interval(running_for: float) -> float:
    """Seconds between polls of a job that has been running (as seen by this session) for `running_for` s."""
    return next(every for below, every in POLL_STEPS if running_for < below)


# A running job with at least this many items keeps the garbage collector off the objects alive when it started.
BIG_JOB_ITEMS = 20_000
_frozen_for: set[str] = set()  # big jobs seen running by this process while the collector's view is frozen
_frozen_lock = threading.Lock()  # guards _frozen_for and the gc.freeze / gc.unfreeze calls


def _hold_big_job_data_still(job_id: str, status: dict | None) -> None:
    """While a big job runs, leave the objects alive at its start out of the garbage collector's full passes.

    Why: a 100,000-row job keeps millions of objects in the server (records, prepared rows, frames); every
    full collection walks them all and stops every script thread, progress polls included, for 0.5-3 s.
    gc.freeze() moves what exists now into a generation the collector skips; when no big job is running
    any more, gc.unfreeze() hands them back, so garbage cycles among them are still collected then.
    """
    running = bool(status and status["status"] in ("pending", "running"))
    big = bool(status and int(status.get("total") or 0) >= BIG_JOB_ITEMS)
    with _frozen_lock:
        if running and big and job_id not in _frozen_for:
            _frozen_for.add(job_id)
            gc.freeze()
        elif not running and job_id in _frozen_for:
            _frozen_for.discard(job_id)
            if not _frozen_for:
                gc.unfreeze()


_modules_when_frozen = 0  # len(sys.modules) when freeze_what_imports_made last froze (guarded by _frozen_lock)


def freeze_what_imports_made() -> None:
    """After a run that imported modules: leave every object alive now out of the collector's full passes.

    Why: a page's first visit imports pandas, the checkers and Streamlit's elements, hundreds of thousands of
    objects that live as long as the server. Until the heap settles, full collections walk them all inside a
    visitor's rerun: on a fresh server, 108 ms of a 187 ms rerun of a finished Validation page. gc.freeze() moves
    them to the generation the collector skips. Only after an import, so a run's own garbage is rarely frozen;
    gc.unfreeze() (a big job ending, above) hands everything back to the collector.
    """
    global _modules_when_frozen
    with _frozen_lock:
        if len(sys.modules) > _modules_when_frozen:
            _modules_when_frozen = len(sys.modules)
            gc.freeze()


def await_briefly(future: futures.Future, wait_s: float, waiting_text: Callable[[], str],
                  every_s: float = 0.25) -> bool:
    """Whether `future` is done, after waiting up to `wait_s` in this run: most work ends within it, and then no
    poll and no extra rerun are needed. If not, a fragment shows `waiting_text()` as a running step (st.status)
    every `every_s` seconds and reruns the page once the future is done; the page stays usable meanwhile."""
    if not future.done():
        futures.wait([future], timeout=wait_s)
    if future.done():
        return True

    @st.fragment(run_every=every_s)
    def poll() -> None:
        if future.done():
            st.rerun(scope="app")
        st.status(waiting_text(), state="running")

    poll()
    return False


def job_progress(job_id: str, live: Callable[[dict], None] | None = None,
                 ready: Callable[[], futures.Future] | None = None,
                 preparing_text: str = "Preparing the results…") -> dict | None:
    """Polls the caller's job from a fragment (fast at first, then backing off); reruns the page once when it
    finishes. `live(status)`, if given, draws more inside the fragment on every poll (e.g. the rows so far).
    `ready()`, if given, is the finished page's preparation (its tables): the page reruns only once that is done,
    so its first finished render neither waits for it nor shares the CPU with it (a 10,000-row run's first finished
    render: 0.42 s → 0.13-0.17 s of server time, benchmarks/bench_browser.py).

    A finished job is not polled at all. One status read per render: the fragment's first run reuses it.
    """
    view = _ProgressView(current_identity(), job_id, ready, preparing_text, rerun_log_path(),
                         rerun_log.current_page() or "?")
    status = door().status(view.who, job_id)
    rerun_log.note_job_state(status["status"] if status else None)
    running = bool(status and status["status"] in ("pending", "running"))
    seen_at = st.session_state.setdefault("spindle_job_seen_at", {})
    interval = None
    if running:
        started = seen_at.setdefault(job_id, time.monotonic())
        interval = poll_interval(time.monotonic() - started)
    first = {"status": status}

    @st.fragment(run_every=interval)
    def poll() -> None:
        with rerun_log.timed(view.timing_to, view.page, "fragment"), error_boundary("job progress"):
            in_page_run = "status" in first  # the fragment's first run, inside the page's run: reuse its read
            current = first.pop("status") if in_page_run else door().status(view.who, job_id)
            rerun_log.note_job_state(current["status"] if current else None)
            _hold_big_job_data_still(job_id, current)
            if current is None:
                st.info("That job is not here (it may belong to another visitor, or it was removed).")
                return
            _draw_progress(view, current)
            if live is not None:
                live(current)
            seen = st.session_state.setdefault("spindle_running_jobs", set())
            if current["status"] not in ("pending", "running"):
                if in_page_run:  # the page's own run goes on to draw the finished job
                    seen.discard(job_id)
                else:
                    _show_finished_when_ready(view)
                return
            seen.add(job_id)
            running_for = time.monotonic() - seen_at.get(job_id, time.monotonic())
            if interval is not None and poll_interval(running_for) != interval:
                st.rerun(scope="app")  # the next, slower interval (at most three times per job)
            eta = current.get("eta")  # None until the first items are done
            if interval is not None and ((eta is None and running_for < 2 * interval) or
                                         (eta is not None and eta < interval)):
                _watch_the_end(view)  # it may end before the next poll

    poll()
    return status


def streamlit_threaded_operation(fn: Callable[[], Any], progress_text: str = "Working…",
                                 success_text: str = "Done.", pool: str = "default") -> Any:
    """Run one long call on the manager while the page shows a spinner; show the result or a clear error."""
    future = get_manager().submit_task(fn, task_name=getattr(fn, "__name__", "operation"), pool=pool,
                                       owner=current_identity().owner_id)
    with st.spinner(progress_text):
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 - shown to the person, not raised
            st.error(redact.redact(f"{type(exc).__name__}: {exc}"))
            return None
    st.success(success_text)
    return result


def file_batch_input(page: str, kind: str, analyser: str, options: dict, samples: Callable[[], list],
                     accepted: str, exec_kind: str = "auto", pool: str | None = None) -> str | None:
    """Upload box and sample button; starting a batch stores the files and starts a durable job."""
    services = get_services()
    limits = services.settings
    st.caption(f"Accepts {accepted}. Up to {limits.max_files_per_upload:,} files of at most "
               f"{limits.max_upload_mb} MB each and {limits.max_batch_mb:,} MB in all; a file that cannot be read "
               "gets a row with the reason.")
    folder = st.toggle("Upload a whole folder", key=f"{page}_folder_mode",
                       help="Pick a folder instead of files: every file in it, subfolders included, is analysed.")
    uploaded = st.file_uploader(f"Choose a folder of {kind} files" if folder else f"Drop {kind} files here",
                                accept_multiple_files="directory" if folder else True,
                                key=f"{page}_upload_folder" if folder else f"{page}_upload",
                                max_upload_size=limits.max_upload_mb)  # refused in the browser, before upload
    cols = st.columns([1, 1, 3])
    start = cols[0].button("Analyse files", type="primary", disabled=not uploaded, key=f"{page}_start",
                           icon=":material/play_arrow:")
    sample = cols[1].button("Try it with sample files", key=f"{page}_samples", icon=":material/science:")
    if start or sample:
        files = [(f.name, f.getvalue()) for f in uploaded] if start else list(samples())
        with st.spinner(f"Storing {len(files)} files…"):
            job_id = door().start_files(current_identity(), kind, files, analyser, options,
                                        exec_kind=exec_kind, pool=pool)
        remember_job(page, job_id)
    return active_job_id(page, kind)


def file_results(page: str, job_id: str | None, empty_text: str,
                 summary_figure: Callable[[pd.DataFrame], Any]) -> pd.DataFrame | None:
    """Progress, the results table with downloads and a summary chart; returns the rows that succeeded."""
    if job_id is None:
        st.info(empty_text)
        return None
    who = current_identity()

    def rows_so_far(status: dict) -> None:  # streamed: the table fills in as chunks finish
        if status["status"] in ("pending", "running") and status.get("done"):
            table = door().file_results(who, job_id)
            finished = table[table["status"] != "pending"]
            st.dataframe(finished, width="stretch", hide_index=True, column_config=_table_columns(finished))
            st.caption(f"{len(finished):,} of {len(table):,} files so far; the full table, downloads and chart "
                       f"follow when the batch is done.")

    status = job_progress(job_id, live=rows_so_far)
    if status is None or status["status"] in ("pending", "running"):
        return None
    table = door().file_results(who, job_id)  # built once per job version (streamlit_app/job_cache.py)
    if table.empty:
        return None
    st.subheader("Results")
    result_table(table, f"spindle-{page}", key=f"{page}_results")
    ok = table[table["status"] == "ok"]
    if not ok.empty:
        figures = st.session_state.setdefault("spindle_summary_figures", {})
        version = (job_id, len(table), len(ok))
        if figures.get(page, (None,))[0] != version:  # a chart once per job, not once per rerun
            figures[page] = (version, summary_figure(ok))
        st.plotly_chart(figures[page][1], key=f"{page}_summary")
    return ok


# ---------------------------------------------------------------- performance settings
SHARED_SCOPE = "The shared pool (everyone's jobs)"
PERSONAL_SCOPE = "My jobs only"


def performance_settings_panel(pool: str, key: str, expanded: bool = False,
                               max_workers: int = 16, chunk_range: tuple[int, int] = (10, 200)) -> None:
    """Workers and chunk size: an admin retunes the shared pool; everyone else sets their own jobs' settings."""
    who = current_identity()
    current = door().pool_settings(pool)
    with st.expander(f"Performance settings · pool “{pool}” ({current['kind']})", expanded=expanded):
        who = admin_unlock(who, key)
        scope = PERSONAL_SCOPE
        if who.is_admin:
            scope = st.radio("These settings change", [SHARED_SCOPE, PERSONAL_SCOPE], key=f"{key}_scope",
                             horizontal=True)
        if scope == SHARED_SCOPE:
            _shared_pool_settings(who, pool, key, current, max_workers, chunk_range)
        else:
            _personal_settings(who, key, current, chunk_range)


def _shared_pool_settings(who: Identity, pool: str, key: str, current: dict, max_workers: int,
                          chunk_range: tuple[int, int]) -> None:
    st.caption(f"You are changing the shared pool “{pool}”: it affects every visitor of this server, live.")
    st.toggle("Parallel processing", value=current["parallel"], key=f"{key}_parallel")
    st.slider("Workers", 1, max(max_workers, current["workers"]), current["workers"],
                        key=f"{key}_workers")
    st.checkbox("Size chunks automatically (from measured chunk times)",
                       value=current["chunk_size"] is None, key=f"{key}_auto")
    low, high = chunk_range
    chunk_default = min(max(current["chunk_size"] or 50, low), high)
    st.slider("Chunk size (items)", low, high, chunk_default, key=f"{key}_chunk",
              disabled=bool(st.session_state.get(f"{key}_auto")))
    # The callback applies the values before the next render, so the page shows what it now runs.
    st.button("Apply", key=f"{key}_apply", icon=":material/tune:", on_click=_retune_shared_pool, args=(who, pool, key))


def _retune_shared_pool(who: Identity, pool: str, key: str) -> None:
    state = st.session_state
    workers, auto, chunk = state[f"{key}_workers"], state[f"{key}_auto"], state[f"{key}_chunk"]
    parallel = state[f"{key}_parallel"]
    try:
        door().retune_pool(who, pool, workers=workers, chunk_size=None if auto else chunk, parallel=parallel)
    except NotAllowed as exc:
        st.toast(str(exc))
        return
    st.toast(f"Pool “{pool}”: {workers} workers, chunk size {'auto' if auto else chunk}, "
             f"parallel {'on' if parallel else 'off'}")


def _personal_settings(who: Identity, key: str, current: dict, chunk_range: tuple[int, int]) -> None:
    share = door().share_limit()
    mine = door().personal_settings(who)
    st.caption(f"You are changing your own jobs only: the jobs you start from now on use up to this many "
               f"workers (your fair share is {share}) and this chunk size.")
    st.caption(f"Your jobs: up to {mine.workers or share} workers, chunk size {mine.chunk_size or 'auto'}. "
               f"The shared pool “{current['name']}” runs {current['workers']} workers, chunk size "
               f"{current['chunk_size'] or 'auto'} (set by an admin).")
    st.slider("Workers for my jobs", 1, share, min(mine.workers or share, share), key=f"{key}_my_workers")
    st.checkbox("Size my chunks automatically", value=mine.chunk_size is None, key=f"{key}_my_auto")
    low, high = chunk_range
    st.slider("Chunk size for my jobs (items)", low, high, min(max(mine.chunk_size or 50, low), high),
              key=f"{key}_my_chunk", disabled=bool(st.session_state.get(f"{key}_my_auto")))
    st.button("Apply to my jobs", key=f"{key}_my_apply", icon=":material/person:", on_click=_set_my_settings,
              args=(who, key))


def _set_my_settings(who: Identity, key: str) -> None:
    state = st.session_state
    chosen = door().set_personal_settings(who, state[f"{key}_my_workers"],
                                          None if state[f"{key}_my_auto"] else state[f"{key}_my_chunk"])
    st.toast(f"Your jobs: {chosen.workers} workers, chunk size {chosen.chunk_size or 'auto'}")


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
    st.dataframe(_page_of(shown, key), width="stretch", hide_index=True, column_config=_table_columns(shown))
    st.caption(f"{len(shown):,} of {len(df):,} rows")
    exported = shown.drop(columns=[c for c in TABLE_ONLY_COLUMNS if c in shown.columns])
    buttons = st.columns(3)
    # Downloads are callables: built when clicked, never on a rerun (st.download_button runs them on demand).
    buttons[0].download_button("Download CSV", lambda: to_csv_bytes(exported), f"{file_stem}.csv", "text/csv",
                               key=f"{key}_csv", icon=":material/download:")  # formula-safe cells
    buttons[1].download_button("Download JSON", lambda: json.dumps(exported.to_dict(orient="records"), default=str,
                                                                   indent=1).encode("utf-8"),
                               f"{file_stem}.json", "application/json", key=f"{key}_json")
    if excel is not None:
        # A callable is only run on click: writing .xlsx costs ~2 s per 1,000 rows, too much for every rerun.
        buttons[2].download_button("Download Excel", lambda: excel(exported), f"{file_stem}.xlsx",
                                   "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                                   key=f"{key}_xlsx")
    return shown


PAGE_ROWS = 5_000  # a longer table is shown a page at a time: the browser stays quick at 100,000 rows
TABLE_ONLY_COLUMNS = ("thumbnail",)  # shown in the table, left out of downloads


def _page_of(df: pd.DataFrame, key: str) -> pd.DataFrame:
    """The whole table when short; else the page of PAGE_ROWS rows the person picks (filters apply first)."""
    if len(df) <= PAGE_ROWS:
        return df
    pages = -(-len(df) // PAGE_ROWS)
    cols = st.columns([1, 4])
    number = cols[0].number_input("Page", 1, pages, 1, key=f"{key}_page")
    first = (int(number) - 1) * PAGE_ROWS
    cols[1].caption(f"Rows {first + 1:,}–{min(first + PAGE_ROWS, len(df)):,} of {len(df):,} "
                    f"({PAGE_ROWS:,} a page; filter or search to narrow them, or download them all).")
    return df.iloc[first:first + PAGE_ROWS]


def _table_columns(df: pd.DataFrame) -> dict[str, Any]:
    """Column settings for result tables: image thumbnails as pictures."""
    if "thumbnail" in df.columns:
        return {"thumbnail": st.column_config.ImageColumn("Thumbnail", width="small")}
    return {}


# ---------------------------------------------------------------- navigation (app.py runs every page)
_navigation_state = threading.local()  # per script-run thread: whether app.py's st.navigation is running the page


@contextlib.contextmanager
def app_navigation_ran() -> Iterator[None]:
    """app.py wraps `navigation.run()` in this, so a page knows it was reached through the app's navigation."""
    _navigation_state.depth = getattr(_navigation_state, "depth", 0) + 1
    try:
        yield
    finally:
        _navigation_state.depth -= 1


def page_header(title: str, caption: str | None = None) -> None:
    """Every page starts here: it makes sure app.py's navigation runs the page, then shows the title."""
    if not getattr(_navigation_state, "depth", 0):
        _run_through_app()
    st.title(title)
    if caption:
        st.caption(caption)


def _run_through_app() -> None:
    """With a pages/ folder, Streamlit runs a fresh server's first session by the folder (its legacy layout,
    hidden by client.showSidebarNavigation = false) until st.navigation has run once, so a first visit to
    /performance reaches the page script without app.py. Run app.py's navigation here instead: it registers the
    real pages, resolves the same address and runs the page inside it; then this outer run stops."""
    import app

    app.main()
    st.stop()


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
    """Who you are (as plain text), sign-out, and the server's state at a glance."""
    who = current_identity()
    with st.sidebar:
        if who.mode == "signed-in":
            st.caption("Signed in as")
            st.text(who.display)
            if st.button("Sign out", key="spindle_sign_out", icon=":material/logout:"):
                st.logout()
        else:
            st.caption("You are an anonymous visitor: this page's link is your identity, so keep it to yourself.")
            st.text(who.display)
        if who.is_admin and (who.mode == "signed-in" or get_services().settings.admin_token):
            st.caption(":material/admin_panel_settings: Admin: you may retune the shared pools.")
        services = get_services()
        metrics = services.manager.metrics()
        busy = sum(p["busy"] for p in metrics["pools"].values())
        st.caption(f"Store: {services.store.backend} · workers busy: {busy}")
        if metrics["memory_held"]:
            st.warning("Memory is low: new chunks are held back until it frees up.")
