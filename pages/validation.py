"""The Validation page: a sheet of people in, checked phones, e-mails and addresses, duplicates and a cleaned file out."""
import streamlit as st

from streamlit_app import widgets
from streamlit_app.validation import batch, charts, export
from streamlit_app.validation.duplicates import DEFAULT_THRESHOLD
from streamlit_app.validation.records import ROLES, SheetError, guess_columns, list_sheets, read_sheet
from streamlit_app.validation.sample_data import sample_sheet

PAGE = "validation"
NOT_MAPPED = "(not in this sheet)"
SAMPLE_NAME = "sample-book-requests.csv"
ROLE_LABELS = {
    "name": "Full name", "first_name": "First name", "last_name": "Last name", "phone": "Phone",
    "email": "E-mail", "address": "Address (one line)", "street": "Street", "city": "City", "state": "State",
    "zip": "ZIP code", "country": "Country", "dob": "Date of birth",
}
state = st.session_state


def memo(name: str, key, make):
    """A finished run's tables and figures do not change: build them once per key, not on every rerun."""
    kept = state.setdefault("validation_memo", {})
    if name not in kept or kept[name][0] != key:
        kept[name] = (key, make())
    return kept[name][1]


widgets.page_header("Validation", "Check a sheet of people: phone numbers, e-mail addresses and US postal addresses, "
                                  "then find the same person entered twice. Nothing leaves this server unless "
                                  "geocoding is switched on.")
services = widgets.get_services()
owner = widgets.current_user()

# ---------------------------------------------------------------- 1. the sheet
uploaded = st.file_uploader("Drop a CSV or Excel file", type=["csv", "tsv", "txt", "xlsx", "xlsm", "xls"],
                            key="validation_upload",
                            help="Comma, semicolon, tab or pipe separated; UTF-8, UTF-16 or Windows encodings. "
                                 "A workbook with several sheets lets you pick one.")
start_now = st.button("Try it with sample data", key="validation_sample", icon=":material/science:",
                      help="200 made-up book requests with planted mistakes and duplicates")
if start_now:
    state["validation_source"] = {"kind": "sample", "name": SAMPLE_NAME, "id": "sample"}
elif uploaded is not None and state.get("validation_upload_seen") != uploaded.file_id:
    state["validation_upload_seen"] = uploaded.file_id
    state["validation_source"] = {"kind": "upload", "name": uploaded.name, "id": uploaded.file_id}
elif uploaded is None and (state.get("validation_source") or {}).get("kind") == "upload":
    state.pop("validation_source", None)
    state.pop("validation_upload_seen", None)

source = state.get("validation_source")
sheet_df = None
sheet_id = None
if source is not None:
    try:
        if source["kind"] == "sample":
            sheet_id = "sample"
            if state.get("validation_sheet_cache", (None,))[0] != sheet_id:
                state["validation_sheet_cache"] = (sheet_id, sample_sheet())
        else:
            data = uploaded.getvalue()
            sheets = list_sheets(data, uploaded.name)
            chosen = None
            if len(sheets) > 1:
                chosen = st.selectbox("Sheet", sheets, key=f"validation_sheet_{uploaded.file_id}",
                                      help="This workbook has several sheets: pick the one with the people.")
            sheet_id = f"{uploaded.file_id}:{chosen or ''}"
            if state.get("validation_sheet_cache", (None,))[0] != sheet_id:
                state["validation_sheet_cache"] = (sheet_id, read_sheet(data, uploaded.name, chosen))
        sheet_df = state["validation_sheet_cache"][1]
    except SheetError as exc:
        st.error(str(exc), icon=":material/error:")
    except Exception as exc:  # noqa: BLE001 - an unreadable upload is a message, never a traceback
        st.error(f"{source['name']}: cannot read this file ({type(exc).__name__}: {exc})", icon=":material/error:")

mapping = {}
if sheet_df is not None:
    columns = [str(c) for c in sheet_df.columns]
    if state.get("validation_mapped_for") != sheet_id:  # a new sheet: start from the guessed columns
        guessed = guess_columns(sheet_df)
        for role in ROLES:
            state[f"validation_map_{role}"] = guessed.get(role) or NOT_MAPPED
        state["validation_mapped_for"] = sheet_id
    batch.warm_workers(services)
    st.caption(f"**{source['name']}**: {len(sheet_df):,} rows, {len(columns)} columns.")
    with st.expander("Columns: which column holds what (guessed; correct it here)", expanded=True):
        grid = st.columns(4)
        for position, role in enumerate(ROLES):
            key = f"validation_map_{role}"
            if state.get(key) not in [NOT_MAPPED, *columns]:
                state[key] = NOT_MAPPED
            choice = grid[position % 4].selectbox(ROLE_LABELS[role], [NOT_MAPPED, *columns], key=key)
            mapping[role] = None if choice == NOT_MAPPED else choice
        used = [c for c in mapping.values() if c]
        twice = sorted({c for c in used if used.count(c) > 1})
        if twice:
            st.warning(f"Used for more than one field: {', '.join(twice)}. Check the choices above.")
        if not any(mapping.get(r) for r in ("phone", "email", "address", "street", "city", "zip")):
            st.warning("No phone, e-mail or address column is chosen: there is nothing to check.")
    with st.expander("Preview of the sheet"):
        st.dataframe(sheet_df.head(50), width="stretch")

# ---------------------------------------------------------------- 2. options
st.subheader("Options")
regions = batch.phone_regions()
default_region = services.settings.default_region if services.settings.default_region in regions else "US"
opts = st.columns(4)
region = opts[0].selectbox("Default phone region", regions, index=regions.index(default_region),
                           key="validation_region", help="The country of numbers written without +country code.")
phone_details = opts[1].toggle("Phone details (carrier, location)", key="validation_phone_details",
                               help="Adds the carrier and place a number belongs to; a little slower.")
threshold = opts[2].slider("Duplicate threshold", 50, 100, int(DEFAULT_THRESHOLD), key="validation_threshold",
                           help=f"Pairs scoring at least this are suggested as the same person. "
                                f"{DEFAULT_THRESHOLD:.0f} keeps precision at 0.99 or better on test data.")
against_history = opts[3].toggle("Check against history", value=True, key="validation_against_history",
                                 help="Also compare with records accepted from earlier uploads.")
if batch.geocoding_enabled(services):
    st.caption(f":material/travel_explore: A Google Maps key is set: after the checks you can geocode the addresses "
               f"(on threads, at most {services.settings.geocode_qps:g} requests a second shared by everyone, "
               f"answers cached in the store).")
else:
    st.caption(":material/location_off: Addresses are checked offline (parsed, USPS-normalised, ZIP against "
               "city and state). Set GOOGLE_MAPS_API_KEY to geocode them too.")
widgets.performance_settings_panel("cpu", key="validation_perf")

start = st.button(f"Validate {len(sheet_df):,} records" if sheet_df is not None else "Validate records",
                  type="primary", disabled=sheet_df is None, key="validation_start", icon=":material/play_arrow:")
if (start or start_now) and sheet_df is not None:
    try:
        records = batch.prepare_records(sheet_df, mapping)
        options = {"default_region": region, "phone_details": phone_details, "source": source["name"],
                   "mapping": mapping, "columns": [str(c) for c in sheet_df.columns]}
        widgets.remember_job(PAGE, batch.start_validation(services, owner, records, options))
    except (ValueError, KeyError) as exc:
        st.error(f"Cannot start: {exc}")

# ---------------------------------------------------------------- 3. the run
job_id = widgets.active_job_id(PAGE, batch.KIND)
if job_id is None:
    st.info("Upload a sheet with one person per row (name, phone, e-mail, address, date of birth: any of these). "
            "Spindle guesses which column is which, checks every record in parallel, suggests duplicates and "
            "gives you back a cleaned file and a list of problems. No file at hand? Try the sample data above.",
            icon=":material/info:")
    st.stop()

info = batch.job_info(services, job_id)
st.subheader("Results")
st.caption(f"Run of **{info.get('source', '')}** · {info.get('total', 0):,} records")
status = widgets.job_progress(job_id)
running = bool(status and status["status"] in ("pending", "running"))


@st.fragment(run_every="1s" if running else None)
def running_counts() -> None:
    counts = batch.running_counts(services, job_id)
    cells = st.columns(4)
    cells[0].metric("Valid", f"{counts['valid']:,}")
    cells[1].metric("Invalid", f"{counts['invalid']:,}")
    cells[2].metric("Failed", f"{counts['failed']:,}")
    cells[3].metric("Waiting", f"{counts['pending']:,}")


running_counts()
if running or status is None:
    st.stop()

finished = (job_id, status["status"], status.get("finished_at"))
results = memo("results", finished, lambda: batch.results_frame(services, job_id))
if results.empty:
    st.info("This run has no records.")
    st.stop()
charts_row = st.columns([3, 2])
charts_row[0].plotly_chart(memo("summary_figure", finished, lambda: charts.summary_figure(results)),
                           key="validation_summary")
if (results["status"] != "valid").any():
    charts_row[1].plotly_chart(memo("problems_figure", finished, lambda: charts.problems_figure(results)),
                               key="validation_problems")
widgets.result_table(results, "spindle-validation",
                     key="validation_results", filter_column="status", excel=export.to_excel_bytes)

# ---------------------------------------------------------------- 4. duplicates
st.subheader("Possible duplicates")
cache_key = (job_id, float(threshold), bool(against_history), batch.history_version(services))
if state.get("validation_dups_key") != cache_key:
    try:
        with st.spinner("Comparing records…"):
            state["validation_dups"] = batch.duplicates_for(services, job_id, threshold, against_history)
        state["validation_dups_key"] = cache_key
    except Exception as exc:  # noqa: BLE001 - shown, not raised
        st.error(f"The duplicate check failed: {type(exc).__name__}: {exc}")
        state["validation_dups"] = None
pairs = state.get("validation_dups")
accepted = batch.load_merges(services, job_id)
if pairs is not None and pairs.empty:
    st.success(f"No two records score {threshold} or more" + (" (history included)." if against_history else "."))
elif pairs is not None:
    groups = memo("groups", cache_key, lambda: batch.duplicate_groups(services, job_id, pairs))
    within = sum(1 for g in groups if g["source"] == "upload")
    st.caption(f"{len(pairs):,} suggested pairs: {within:,} groups within this sheet, "
               f"{len(groups) - within:,} matches with history. Scores are 0-100 per field; the total weighs "
               f"name .35, phone .20, e-mail .20, address .15, date of birth .10.")
    labels = [g["label"] for g in groups]
    if state.get("validation_group") not in labels:
        state["validation_group"] = labels[0]
    look = st.selectbox("Look at", labels, key="validation_group")
    group = groups[labels.index(look)] if look in labels else groups[0]
    st.dataframe(group["records"], width="stretch")
    score_columns = [c for c in ("left_row", "right_row", "name", "phone", "email", "address", "dob", "score", "reasons")
                     if c in group["pairs"].columns]
    st.dataframe(group["pairs"][score_columns], hide_index=True, width="stretch",
                 column_config={"left_row": "Row", "right_row": "Matches", "dob": "date of birth",
                                "score": st.column_config.NumberColumn("Score", format="%.1f")})

    st.markdown("**Merge suggestions**: tick the pairs that are the same person. The cleaned file keeps the first "
                "row of each merged group, fills its empty cells from the others and drops the rest.")
    keys = [batch.pair_key(p) for p in pairs[["source", "left_row", "right_row"]].to_dict("records")]
    editor_data = pairs[["left_row", "right_row", "source", "score", "reasons"]].copy()
    editor_data.insert(0, "merge", [k in accepted for k in keys])
    buttons = st.columns([1, 1, 4])
    version = state.setdefault("validation_merge_version", 0)
    if buttons[0].button("Accept all", key="validation_accept_all", icon=":material/done_all:"):
        batch.save_merges(services, job_id, accepted | set(keys))
        state["validation_merge_version"] = version + 1
        st.rerun()
    if buttons[1].button("Reject all", key="validation_reject_all", icon=":material/remove_done:"):
        batch.save_merges(services, job_id, accepted - set(keys))
        state["validation_merge_version"] = version + 1
        st.rerun()
    edited = st.data_editor(
        editor_data, hide_index=True, width="stretch", disabled=["left_row", "right_row", "source", "score", "reasons"],
        column_config={"merge": st.column_config.CheckboxColumn("Same person?", help="Merge these two records"),
                       "left_row": st.column_config.Column("Row"),
                       "right_row": st.column_config.Column("Matches row / history #"),
                       "score": st.column_config.ProgressColumn("Score", min_value=0, max_value=100, format="%.1f")},
        key=f"validation_merge_editor_{job_id}_{threshold}_{against_history}_{version}")
    chosen = {k for k, merge in zip(keys, edited["merge"].tolist()) if merge}
    now_accepted = (accepted - set(keys)) | chosen
    if now_accepted != accepted:
        batch.save_merges(services, job_id, now_accepted)
        accepted = now_accepted
    st.caption(f"{len(chosen):,} of {len(keys):,} suggested merges accepted.")

# ---------------------------------------------------------------- 5. geocoding (only with a key)
if batch.geocoding_enabled(services):
    st.subheader("Geocoding")
    addresses = batch.addresses_to_geocode(services, job_id)
    geo = state.get("validation_geocode")
    if geo and geo["job"] != job_id:
        geo = None
    if st.button(f"Geocode {len(addresses):,} addresses", key="validation_geocode_start", disabled=not addresses,
                 icon=":material/travel_explore:"):
        try:
            geo_job = batch.start_geocoding(services, job_id, owner)
            geo = state["validation_geocode"] = {"job": job_id, "manager_job": geo_job.id}
        except ValueError as exc:
            st.error(str(exc))
    manager_job = services.manager.job(geo["manager_job"]) if geo else None
    geo_running = bool(manager_job is not None and not manager_job.finished_flag)

    @st.fragment(run_every="1s" if geo_running else None)
    def geocode_progress() -> None:
        job = services.manager.job(geo["manager_job"]) if geo else None
        if job is None:
            return
        progress = job.progress()
        total = progress.total or 0
        st.progress(min(1.0, progress.fraction) if total else 1.0,
                    text=f"Geocoding: {progress.done:,} of {total:,} addresses · {progress.failed:,} failed")
        if job.finished_flag and geo_running:
            st.rerun(scope="app")

    geocode_progress()
    job_results = manager_job.result(0) if manager_job is not None and manager_job.finished_flag else None
    geocoded = batch.geocode_frame(services, job_id, job_results)
    if (geocoded["geocode_status"] != "not geocoded").any():
        widgets.result_table(geocoded, "spindle-geocoded", key="validation_geocoded", filter_column="geocode_status")
        located = geocoded.dropna(subset=["lat", "lng"])
        if len(located):
            st.map(located.rename(columns={"lng": "lon"})[["lat", "lon"]])

# ---------------------------------------------------------------- 6. take it home
st.subheader("Download and keep")
cleaned = batch.cleaned_frame(results, accepted)
problems = memo("problems", finished, lambda: batch.problems_frame(services, job_id))
stem = (info.get("source") or "sheet").rsplit(".", 1)[0]
st.caption(f"The cleaned file has {len(cleaned):,} records (the sheet's columns plus status, problems and normalized "
           f"phone, e-mail and address); the problems report lists {len(problems):,} problems, one per line. "
           f"Cells that a spreadsheet would run as formulas are made plain text.")
downloads = st.columns(3)
downloads[0].download_button("Cleaned file (CSV)", export.to_csv_bytes(cleaned), f"{stem}-cleaned.csv", "text/csv",
                             key="validation_clean_csv", icon=":material/download:", on_click="ignore")
downloads[1].download_button("Cleaned file (Excel)", lambda: export.to_excel_bytes(cleaned, problems),
                             f"{stem}-cleaned.xlsx",
                             "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                             key="validation_clean_xlsx", icon=":material/download:", on_click="ignore")
downloads[2].download_button("Problems report (CSV)", export.to_csv_bytes(problems), f"{stem}-problems.csv",
                             "text/csv", key="validation_problems_csv", icon=":material/download:", on_click="ignore")

done_before = batch.history_accepted(services, job_id)
valid = int((cleaned["status"] == "valid").sum())
if done_before:
    st.caption(f":material/history: {done_before['added']:,} valid records of this run are in history; later "
               f"uploads are checked against them.")
elif st.button(f"Accept {valid:,} valid records into history", key="validation_accept_history",
               icon=":material/history:", disabled=not valid,
               help="Later uploads' duplicate check then includes these people."):
    added = batch.accept_into_history(services, job_id, accepted)
    st.success(f"Added {added:,} records to history.")
