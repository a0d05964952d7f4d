"""The Performance page: live metrics of the shared manager, its settings, and benchmarks."""
import pandas as pd
import streamlit as st

from streamlit_app import performance, widgets
from utils.benchmark import BenchmarkRun, run_benchmark

manager = widgets.get_manager()
widgets.page_header("Performance", "Every page runs its work through this one shared manager. "
                    "Its figures refresh every second.")


@st.fragment(run_every="1s")
def live_metrics() -> None:
    snapshot = manager.metrics()
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
                     "efficiency": pool["efficiency"], "chunk": pool["chunk_size"] or "auto"})
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
    jobs = snapshot["jobs"]
    st.markdown("**Active jobs**")
    if jobs:
        st.dataframe(pd.DataFrame([{"job": j["name"], "user": j["owner"] or "system", "pool": j["pool"],
                                    "backend": j["backend"], "progress": j["fraction"], "done": j["done"],
                                    "total": j["total"], "failed": j["failed"], "items/s": j["rate"],
                                    "why this backend": j["backend_reason"]} for j in jobs]),
                     hide_index=True, width="stretch",
                     column_config={"progress": st.column_config.ProgressColumn(min_value=0, max_value=1)})
    else:
        st.caption("No job is running. Start one with “Test threading” or a benchmark below.")
    users = manager.user_stats()
    if users:
        st.markdown("**Fair shares per user**")
        st.dataframe(pd.DataFrame(users), hide_index=True, width="stretch")
    unfinished = widgets.get_services().store.list_jobs(statuses=["pending", "running"], limit=200)
    if unfinished:
        st.markdown("**Durable jobs in the store, not yet finished**")
        st.dataframe(pd.DataFrame([{"job": j["id"], "page": j["kind"], "user": j["owner"], "status": j["status"],
                                    "progress": (j["done"] / j["total"]) if j["total"] else 0.0,
                                    "done": j["done"], "total": j["total"], "failed": j["failed"]}
                                   for j in unfinished]), hide_index=True, width="stretch",
                     column_config={"progress": st.column_config.ProgressColumn(min_value=0, max_value=1)})


@st.fragment(run_every="3s")
def history_chart() -> None:
    history = manager.metrics()["history"][-180:]
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
pool = st.selectbox("Pool", manager.pool_names(), key="perf_pool")
widgets.performance_settings_panel(pool, key="perf_settings", expanded=True)
buttons = st.columns(2)
if buttons[0].button("Test threading", icon=":material/play_arrow:"):
    manager.map(performance.simulated_io_call, range(200), name="test threading", pool="default")
    st.toast("Started 200 simulated I/O calls on the default pool")
if buttons[1].button("Clear metrics", icon=":material/restart_alt:"):
    manager.reset_metrics()
    st.toast("Metrics cleared")

st.subheader("Benchmark: sequential vs parallel")
choice = st.selectbox("Workload", list(performance.WORKLOADS), format_func=lambda k: performance.WORKLOADS[k].label)
workload = performance.WORKLOADS[choice]
size = st.number_input("Items", 1, workload.max_size, workload.default_size, key=f"bench_size_{choice}")
mode = st.radio("Run", ["One setting", "Sweep worker counts"], horizontal=True)
pool_workers = manager.pool_settings(workload.pool)["workers"]
if mode == "One setting":
    worker_counts = [st.slider("Workers", 1, 16, min(4, pool_workers), key="bench_workers")]
else:
    worker_counts = [w for w in (1, 2, 4, 8, 16) if w <= max(pool_workers, 2)]
    st.caption(f"Sweeps {worker_counts} workers (up to the pool's size; raise it above to sweep further).")
if st.button("Run benchmark", type="primary", icon=":material/speed:"):
    run = BenchmarkRun(1 + len(worker_counts))
    st.session_state["bench_run"] = run
    manager.submit_task(run_benchmark, manager, workload.fn, workload.make_items(int(size)), workload.label,
                        worker_counts, run=run, record=widgets.get_services().store.record_run,
                        task_name="benchmark", pool="analytics")


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
            manager.configure(target, workers=max(best.workers, 1), chunk_size=chunk)
            st.toast(f"Pool “{target}” now runs {best.workers} workers")
