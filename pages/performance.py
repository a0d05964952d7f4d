"""The Performance page: live metrics of the shared manager, its settings, and benchmarks."""
import pandas as pd
import streamlit as st

from streamlit_app import performance, widgets
from streamlit_app.jobs import NotAllowed

door = widgets.door()
who = widgets.current_identity()
widgets.page_header("Performance", "Every page runs its work through this one shared manager. "
                    "Its figures refresh every second.")


@st.fragment(run_every="1s")
def live_metrics() -> None:
    snapshot = door.metrics()
    system = snapshot["system"]
    top = st.columns(4)
    top[0].metric("CPU cores", system["cpu_count"])
    top[1].metric("CPU use", f"{system['cpu_percent']:.0f}%")
    top[2].metric("Memory use", f"{system['memory_percent']:.0f}%", help=f"{system['memory_available_mb']:,.0f} MB free")
    top[3].metric("Server memory", f"{system['process_rss_mb']:,.0f} MB")
    if snapshot["memory_held"]:
        st.warning("Memory is low: the manager is holding new chunks back until it frees up.")
    rows = []
    for name, pool in snapshot["pools"].items():
        rows.append({"pool": name, "backend": pool["backend"], "workers": pool["workers"], "busy": pool["busy"],
                     "queued": pool["queued"], "completed": pool["completed"], "failed": pool["failed"],
                     "retried": pool["retried"], "timed out": pool["timed_out"], "cancelled": pool["cancelled"],
                     "success": pool["success_rate"], "avg ms": pool["avg_task_s"] * 1000,
                     "p95 ms": pool["p95_task_s"] * 1000, "items/s": pool["items_per_s"],
                     "efficiency": pool["efficiency"], "chunk": str(pool["chunk_size"] or "auto"),
                     "concurrency": pool.get("concurrency", pool["workers"]),  # adapts to the work (engine)
                     "why": pool.get("concurrency_reason", "")})
    busiest = sorted(rows, key=lambda r: (-r["completed"], r["pool"]))[:4]
    cards = st.columns(len(busiest))
    for col, row in zip(cards, busiest):
        with col.container(border=True):
            st.markdown(f"**{row['pool']}** · {row['backend']}")
            st.metric("busy / workers", f"{row['busy']} / {row['workers']}")
            st.caption(f"{row['completed']:,} done · {row['failed']:,} failed · {row['items/s']:,.0f} items/s")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                 column_config={"success": st.column_config.NumberColumn(format="percent"),
                                "efficiency": st.column_config.ProgressColumn(min_value=0, max_value=1),
                                "avg ms": st.column_config.NumberColumn(format="%.2f"),
                                "p95 ms": st.column_config.NumberColumn(format="%.2f"),
                                "items/s": st.column_config.NumberColumn(format="%.0f")})
    jobs = door.live_jobs(who)
    st.markdown("**Active jobs**" if who.is_admin else "**Your active jobs**")
    if jobs:
        st.dataframe(pd.DataFrame([{"job": j["name"], "user": _owner_label(j["owner"]), "pool": j["pool"],
                                    "backend": j["backend"], "progress": j["fraction"], "done": j["done"],
                                    "total": j["total"], "failed": j["failed"], "items/s": j["rate"],
                                    "why this backend": j["backend_reason"]} for j in jobs]),
                     hide_index=True, width="stretch",
                     column_config={"progress": st.column_config.ProgressColumn(min_value=0, max_value=1)})
    else:
        st.caption("No job is running. Start one with “Test threading” or a benchmark below.")
    visitors = door.visitors(who)
    st.caption(f"{visitors.others} other visitor{'s' if visitors.others != 1 else ''}, "
               f"{visitors.jobs} job{'s' if visitors.jobs != 1 else ''}, "
               f"{visitors.workers} worker{'s' if visitors.workers != 1 else ''} busy for them.")
    if visitors.rows:  # admins only: who is using the server
        st.markdown("**Fair shares per user**")
        st.dataframe(pd.DataFrame(visitors.rows), hide_index=True, width="stretch")
    unfinished = door.unfinished_jobs(who)
    if unfinished:
        st.markdown("**Durable jobs in the store, not yet finished**" if who.is_admin else
                    "**Your durable jobs, not yet finished**")
        st.dataframe(pd.DataFrame([{"job": j["id"], "page": j["kind"], "user": _owner_label(j["owner"]),
                                    "status": j["status"],
                                    "progress": (j["done"] / j["total"]) if j["total"] else 0.0,
                                    "done": j["done"], "total": j["total"], "failed": j["failed"]}
                                   for j in unfinished]), hide_index=True, width="stretch",
                     column_config={"progress": st.column_config.ProgressColumn(min_value=0, max_value=1)})


def _owner_label(owner: str | None) -> str:
    return "you" if owner == who.owner_id else (owner or "system")


@st.fragment(run_every="3s")
def history_chart() -> None:
    history = door.metrics()["history"][-180:]
    if len(history) < 2:
        st.caption("The throughput chart fills in as the manager runs.")
        return
    st.plotly_chart(performance.history_figure(history), key="history_chart")


live_metrics()
history_chart()


@st.fragment(run_every="5s")
def cluster() -> None:
    widgets.cluster_panel()


st.subheader("Where CPU-bound work runs")
cluster()

st.subheader("Settings")
pool = st.selectbox("Pool", door.pool_names(), key="perf_pool")
widgets.performance_settings_panel(pool, key="perf_settings", expanded=True)
buttons = st.columns(2)
if buttons[0].button("Test threading", icon=":material/play_arrow:"):
    door.start_test_threading(who)
    st.toast("Started 200 simulated I/O calls on the default pool (your job, on your share)")
if who.is_admin and buttons[1].button("Clear metrics", icon=":material/restart_alt:"):
    door.clear_metrics(who)
    st.toast("Metrics cleared")

st.subheader("Benchmark: sequential vs parallel")
choice = st.selectbox("Workload", list(performance.WORKLOADS), format_func=lambda k: performance.WORKLOADS[k].label)
workload = performance.WORKLOADS[choice]
size = st.number_input("Items", 1, workload.max_size, workload.default_size, key=f"bench_size_{choice}")
mode = st.radio("Run", ["One setting", "Sweep worker counts"], horizontal=True)
pool_workers = min(door.pool_settings(workload.pool)["workers"], door.share_limit())
if mode == "One setting":
    worker_counts = [st.slider("Workers", 1, door.share_limit(), min(4, pool_workers), key="bench_workers")]
else:
    worker_counts = [w for w in (1, 2, 4, 8, 16) if w <= max(pool_workers, 2)]
    st.caption(f"Sweeps {worker_counts} workers (up to the pool's size and your fair share of "
               f"{door.share_limit()}).")
if st.button("Run benchmark", type="primary", icon=":material/speed:"):
    try:
        st.session_state["bench_run"] = door.start_benchmark(who, choice, int(size), worker_counts)
    except NotAllowed as exc:
        st.warning(str(exc))


@st.fragment(run_every="1s")
def benchmark_status() -> None:
    run = st.session_state.get("bench_run")
    if run is None:
        st.caption("Pick a workload and run it: the charts compare sequential and parallel times.")
        return
    state = run.snapshot()
    if not state["finished"]:
        st.progress(state["fraction"], text=f"Benchmark running: {state['stage']}")
        return
    if state["error"]:
        st.error(f"The benchmark failed: {state['error']}")
        return
    if st.session_state.get("bench_shown") is not run:
        st.session_state["bench_shown"] = run
        st.rerun(scope="app")


benchmark_status()
run = st.session_state.get("bench_run")
if run is not None and run.finished and run.result is not None:
    result = run.result
    st.success(result.verdict())
    rows = result.to_rows()
    times_fig, speedup_fig = performance.benchmark_figures(rows)
    charts = st.columns(2)
    charts[0].plotly_chart(times_fig, key="bench_times")
    charts[1].plotly_chart(speedup_fig, key="bench_speedup")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    best = result.best
    if best is not None:
        chunk = best.chunk_size
        st.info(f"Recommendation for this workload: {best.workers} workers, chunk size "
                f"{chunk or 'automatic'} ({best.backend}).")
        if st.button("Apply recommendation", icon=":material/done_all:"):
            target = "cpu" if best.backend == "process" else workload.pool
            if who.is_admin:
                door.retune_pool(who, target, workers=max(best.workers, 1), chunk_size=chunk,
                                 parallel=door.pool_settings(target)["parallel"])
                st.toast(f"Pool “{target}” now runs {best.workers} workers")
            else:
                mine = door.set_personal_settings(who, best.workers, chunk)
                st.toast(f"Your jobs now use {mine.workers} workers, chunk size {mine.chunk_size or 'auto'}")


# ---------------------------------------------------------------- job history (issue 12, part 3)
st.subheader("Job history")


@st.fragment
def job_history() -> None:
    problem = door.store_problem()
    if problem:
        st.warning(problem)
    history = door.job_history(who)
    if not history:
        st.info("No finished jobs yet. Run “Test threading” above, or process a batch on any page: finished jobs, "
                "their failures and their slowest items show up here.")
    else:
        st.dataframe(pd.DataFrame([{"job": row["job"], "what": row["name"], "user": _owner_label(row["owner"]),
                                    "status": row["status"], "items": row["total"], "failed": row["failed"],
                                    "seconds": row["seconds"]} for row in history]),
                     hide_index=True, width="stretch", key="history_table",
                     column_config={"seconds": st.column_config.NumberColumn(format="%.2f")})
        by_id = {row["job"]: row for row in history}
        chosen = st.selectbox("Job", list(by_id), key="history_job",
                              format_func=lambda job: f"{by_id[job]['name']} · {job} · {by_id[job]['status']}")
        _job_details(by_id[chosen])
    _your_running_jobs()
    pool_name = st.selectbox("Worker time in pool", door.pool_names(), key="history_pool")
    workers = door.worker_times(pool_name)
    if workers:
        st.dataframe(pd.DataFrame(workers), hide_index=True, width="stretch", key="history_workers",
                     column_config={"busy share": st.column_config.ProgressColumn(min_value=0, max_value=1)})
    else:
        st.caption("This pool has no worker threads running (process pools report no per-worker time).")
    st.button("Refresh", key="history_refresh", icon=":material/refresh:")


def _job_details(row: dict) -> None:
    job_id = row["job"]
    slowest = door.slowest_items(who, job_id)
    if slowest:
        st.caption("Slowest items")
        st.dataframe(pd.DataFrame(slowest), hide_index=True, key="history_slowest",
                     column_config={"seconds": st.column_config.NumberColumn(format="%.3f")})
    failures = door.job_failures(who, job_id) if row["failed"] else []
    with st.expander(f"Failures ({len(failures)})", icon=":material/error:"):
        if not failures:
            st.text("Every item of this job finished without an error.")
        for failure in failures[:50]:  # user text (file names, reasons): shown as text, never markdown
            label = f" ({failure['name']})" if failure["name"] else ""
            st.text(f"Item {failure['item']}{label}: {failure['error']} {failure['reason']}".replace("  ", " "))
            if failure["traceback"]:
                st.code(failure["traceback"], language=None)
        if len(failures) > 50:
            st.caption(f"{len(failures) - 50} more failures are not shown.")
    if row["owner"] == who.owner_id and row["retryable"]:
        if st.button(f"Retry failed items ({row['retryable']})", key="history_retry", icon=":material/replay:"):
            again = door.retry_failed(who, job_id)
            st.toast(f"Retrying {row['retryable']} failed items as job {again}" if again else "Nothing to retry")


def _your_running_jobs() -> None:
    mine = [job for job in door.live_jobs(who) if job.get("owner") == who.owner_id]
    if not mine:
        return
    names = {job["job_id"]: f"{job['name']} · {job['job_id']} · {job['done']}/{job['total'] or '?'}" for job in mine}
    cols = st.columns([3, 1])
    chosen = cols[0].selectbox("Your running job", list(names), format_func=names.__getitem__, key="history_running")
    if cols[1].button("Cancel", key="history_cancel", icon=":material/cancel:"):
        door.cancel_job(who, chosen)
        st.toast("Cancelled: finished items are kept")


job_history()


# ---------------------------------------------------------------- queue intake (issue 14)
from streamlit_app import intake_status  # noqa: E402 - this section is self-contained


@st.fragment(run_every="2s")
def intake_panel() -> None:
    st.subheader("Queue intake")
    data = intake_status.intake_status(widgets.get_services())
    if not data["enabled"]:
        st.info(data["words"])
        return
    if data["state"] == "connected":
        st.success(data["words"])
    else:
        st.warning(data["words"])
    if not data["running"]:
        return
    top = st.columns(4)
    top[0].metric("Waiting in the queue", "–" if data["depth"] is None else f"{data['depth']:,}")
    top[1].metric("Consumers", "–" if data["consumers"] is None else data["consumers"])
    top[2].metric("Prefetch", data["prefetch"], help=f"follows the “{data['pool']}” pool's {data['workers']} workers")
    top[3].metric("In flight", data["in_flight"])
    rates = st.columns(3)
    totals = data["totals"]
    rates[0].metric("Acked / s", data["acked_per_s"], help=f"{totals['acked']:,} in all")
    rates[1].metric("Requeued / s", data["requeued_per_s"], help=f"{totals['requeued']:,} in all")
    rates[2].metric("Dead-lettered / s", data["dead_lettered_per_s"], help=f"{totals['dead_lettered']:,} in all")
    if data["gaps"]:
        st.caption("Times the broker could not be reached")
        st.dataframe(pd.DataFrame(data["gaps"]), hide_index=True, width="stretch")
    if data["dead_letters"] and who.is_admin:  # producers' ids and file names: admins only
        st.caption(f"Latest reasons in the dead-letter queue “{data['dead_letter_queue']}”")
        st.dataframe(pd.DataFrame(data["dead_letters"]), hide_index=True, width="stretch")
    elif data["dead_letters"]:
        st.caption(f"{data['dead_letter_depth'] or 0:,} messages wait in the dead-letter queue; admins see why.")


intake_panel()
