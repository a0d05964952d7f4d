"""The Validation page: a sheet of people in, checked phones, e-mails and addresses, duplicates and a cleaned file out."""
import time

import streamlit as st

from streamlit_app import widgets
from streamlit_app.validation import batch, export
from streamlit_app.validation.duplicates import DEFAULT_THRESHOLD
from streamlit_app.validation.duplicates import FIELDS as DUPLICATE_FIELDS
from streamlit_app.validation.records import ROLES, SheetError, guess_columns
from streamlit_app.validation.sample_data import sample_sheet

PAGE = "validation"
SHEET_WAIT_S = 1.5  # an upload's read is awaited this long in the run before a fragment polls it (most take 0.1 s)
# A run's start is awaited this long in the click's run, then polled every 0.25 s (10,000 rows take ~0.5 s). Side by
# side at 10,000 rows (benchmarks/bench_browser.py): 1 s then every 0.5 s, upload to full page 5.3-5.5 s, the click's
# run 0.40-0.55 s; 0.25 s then every 0.25 s, 5.3-5.6 s and 0.19-0.34 s; every 0.1 s, 5.8 s (the polls' CPU).
START_WAIT_S = 0.25
TABLES_WAIT_S = 0.1  # a finished run's tables are awaited this long before a fragment polls them
DUPLICATES_WAIT_S = 0.0  # the comparison is not awaited in the run: the rest of the page renders meanwhile
NOT_MAPPED = "(not in this sheet)"
SAMPLE_NAME = "sample-book-requests.csv"
ROLE_LABELS = {
    "name": "Full name", "first_name": "First name", "last_name": "Last name", "phone": "Phone",
    "email": "E-mail", "address": "Address (one line)", "street": "Street", "city": "City", "state": "State",
    "zip": "ZIP code", "country": "Country", "dob": "Date of birth",
    "house_number": "House number", "address_2": "Address line 2", "identifier": "ID number (SSN, customer no.)",
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
door = widgets.door()
who = widgets.current_identity()
door.warm_sheet_reader()  # sheets are read in the untrusted pool's workers: they load the reader while a file is picked

# ---------------------------------------------------------------- 1. the sheet
def read_uploaded_sheet(upload) -> str | None:
    """The upload's table, read as a job in a memory-capped worker process, never in this script thread.

    Returns the sheet id once "validation_sheet_cache" holds the table; None while the job runs (a fragment
    shows it and reruns the page when it ends). A refused or broken sheet raises its SheetError, kept so a
    rerun does not read the same file again.
    """
    cached = state.get("validation_sheet_cache", (None, None, None))
    previous = cached[2] if str(cached[0]).startswith(f"{upload.file_id}:") else None
    wanted = sheet_choice(upload, previous) if previous is not None else None
    if previous is not None and wanted in (None, previous.sheet):
        return cached[0]
    key = (upload.file_id, wanted)
    failed = state.get("validation_sheet_failed")
    if failed is not None and failed[0] == key:
        raise SheetError(failed[1])
    reading = state.get("validation_sheet_reading")
    if reading is None or reading["key"] != key:
        future = door.start_sheet_read(who, upload.getvalue(), upload.name, wanted)
        reading = state["validation_sheet_reading"] = {"key": key, "future": future, "started": time.monotonic(),
                                                       "name": upload.name}
    if not widgets.await_briefly(reading["future"], SHEET_WAIT_S, lambda: (
            f"Reading {widgets.md_escape(reading['name'])} in a worker process… "
            f"{time.monotonic() - reading['started']:.0f} s. Rows, columns and cells are checked as they are read; "
            "a sheet past a limit stops with a message naming it.")):
        return None
    state.pop("validation_sheet_reading", None)
    try:
        read = reading["future"].result()
        frame = read.table()
    except Exception as exc:  # noqa: BLE001 - a refused sheet, or a worker the file took down: a message
        message = str(exc) if isinstance(exc, SheetError) else f"{upload.name}: cannot read this file ({exc})"
        state["validation_sheet_failed"] = (key, message)
        raise SheetError(message) from exc
    sheet_id = f"{upload.file_id}:{read.sheet or ''}"
    state["validation_sheet_cache"] = (sheet_id, frame, read)
    if previous is None:
        sheet_choice(upload, read)
    return sheet_id


def sheet_choice(upload, read) -> str | None:
    """The workbook's sheet picker (only when it has several sheets); its value, or None."""
    if len(read.sheets) < 2:
        return None
    return st.selectbox("Sheet", read.sheets, index=read.sheets.index(read.sheet),
                        key=f"validation_sheet_{upload.file_id}",
                        help="This workbook has several sheets: pick the one with the people.")


uploaded = st.file_uploader("Drop a CSV or Excel file", type=["csv", "tsv", "txt", "xlsx", "xlsm", "xls"],
                            key="validation_upload", max_upload_size=services.settings.max_upload_mb,
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
            sheet_id = read_uploaded_sheet(uploaded)
        if sheet_id is not None:
            sheet_df = state["validation_sheet_cache"][1]
    except SheetError as exc:
        st.error(str(exc), icon=":material/error:")
    except Exception as exc:  # noqa: BLE001 - an unreadable upload is a message, never a traceback
        st.error(f"{widgets.md_escape(source['name'])}: cannot read this file ({widgets.md_escape(type(exc).__name__)}: "
                 f"{widgets.md_escape(exc)})", icon=":material/error:")

mapping = {}
if sheet_df is not None:
    columns = [str(c) for c in sheet_df.columns]
    if state.get("validation_mapped_for") != sheet_id:  # a new sheet: start from the guessed columns
        guessed = guess_columns(sheet_df)
        for role in ROLES:
            state[f"validation_map_{role}"] = guessed.get(role) or NOT_MAPPED
        state["validation_mapped_for"] = sheet_id
    batch.warm_workers(services)  # the checks run in the cpu pool's workers: they load the checkers meanwhile
    st.caption(f"**{widgets.md_escape(source['name'])}**: {len(sheet_df):,} rows, {len(columns)} columns.")
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
            st.warning(f"Used for more than one field: {widgets.md_escape(', '.join(twice))}. Check the choices above.")
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
threshold = opts[2].slider("Duplicates: same-person probability at least (%)", 50.0, 99.9, float(DEFAULT_THRESHOLD),
                           step=0.5, format="%.1f", key="validation_threshold",
                           help=f"Pairs at least this likely to be one person are suggested. The probability is "
                                f"learnt from each upload (Fellegi–Sunter record linkage). {DEFAULT_THRESHOLD:.0f} % "
                                f"means nine to one for 'same person'.")
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
    options = {"default_region": region, "phone_details": phone_details, "source": source["name"],
               "mapping": mapping, "columns": [str(c) for c in sheet_df.columns]}
    state["validation_starting"] = {"total": len(sheet_df), "future": door.start_validation_in_background(
        who, sheet_df, mapping, options, threshold, against_history)}

starting = state.get("validation_starting")
if starting is not None:
    if not widgets.await_briefly(starting["future"], START_WAIT_S, waiting_text=lambda: (
            f"Storing {starting['total']:,} records and starting the run…")):
        st.stop()
    state.pop("validation_starting", None)
    try:
        widgets.remember_job(PAGE, starting["future"].result())
    except (ValueError, KeyError) as exc:
        st.error(f"Cannot start: {widgets.md_escape(exc)}")

# ---------------------------------------------------------------- 3. the run
job_id = widgets.active_job_id(PAGE, batch.KIND)
if job_id is None:
    st.info("Upload a sheet with one person per row (name, phone, e-mail, address, date of birth: any of these). "
            "Spindle guesses which column is which, checks every record in parallel, suggests duplicates and "
            "gives you back a cleaned file and a list of problems. No file at hand? Try the sample data above.",
            icon=":material/info:")
    st.stop()

info = door.validation_info(who, job_id)
st.subheader("Results")
st.caption(f"Run of **{widgets.md_escape(info.get('source', ''))}** · {info.get('total', 0):,} records")


def counts_and_rows_so_far(shown: dict) -> None:
    """Drawn inside the progress fragment on every poll: the counts, and while it runs the rows finished so far
    (the newest, next to the rows waiting: each poll reads only the rows finished since the last one)."""
    counts = door.validation_counts(who, job_id)
    cells = st.columns(4)
    cells[0].metric("Valid", f"{counts['valid']:,}")
    cells[1].metric("Invalid", f"{counts['invalid']:,}")
    cells[2].metric("Failed", f"{counts['failed']:,}")
    cells[3].metric("Waiting", f"{counts['pending']:,}")
    if shown["status"] not in ("pending", "running"):
        return
    so_far = door.validation_rows_so_far(who, job_id)
    finished = int((so_far["status"] != "pending").sum()) if len(so_far) else 0
    if finished:
        st.dataframe(so_far, width="stretch", hide_index=True)
        checked = counts["valid"] + counts["invalid"] + counts["failed"]
        st.caption(f"Rows checked so far: the newest {finished:,} of {checked:,}, next to the rows still waiting. "
                   "Filters, charts and downloads of all rows follow when the run ends."
                   if checked > finished else "Rows checked so far. Filters, charts and downloads follow when the "
                                              "run ends.")


preparing_text = f"Preparing the table, problems and downloads of {info.get('total', 0):,} records…"
status = widgets.job_progress(job_id, live=counts_and_rows_so_far,
                              ready=lambda: door.validation_tables_ready(who, job_id), preparing_text=preparing_text)
running = bool(status and status["status"] in ("pending", "running"))
if running or status is None:
    st.stop()

finished = (job_id, status["status"], status.get("finished_at"))
if not widgets.await_briefly(door.validation_tables_ready(who, job_id), TABLES_WAIT_S,
                             waiting_text=lambda: preparing_text):
    st.stop()  # built as the job ended, so usually at once; 100,000 rows take a few seconds
results = memo("results", finished, lambda: door.validation_results(who, job_id))
if results.empty:
    st.info("This run has no records.")
    st.stop()
# The charts' places come first, the charts themselves last (end of this script), so the table, duplicates and
# downloads below reach the browser first. They are Vega-Lite bar charts: plotly held those back ~0.8 s in Chromium.
chart_slots = [column.empty() for column in st.columns([3, 2])]


def draw_charts() -> None:
    verdicts, problems = memo("charts", finished, lambda: door.validation_charts(who, job_id))
    with chart_slots[0].container():
        st.caption("Records and fields by verdict")
        st.vega_lite_chart(*verdicts, width="stretch")
    if not problems[0].empty:
        with chart_slots[1].container():
            st.caption("Most common problems")
            st.vega_lite_chart(*problems, width="stretch")


widgets.result_table(results, "spindle-validation",
                     key="validation_results", filter_column="status", excel=export.to_excel_bytes)

# ---------------------------------------------------------------- 4. duplicates
st.subheader("Possible duplicates")
cache_key = (job_id, float(threshold), bool(against_history), door.history_version(who))
if state.get("validation_dups_key") != cache_key:
    comparing = state.get("validation_dups_comparing")
    if comparing is None or comparing[0] != cache_key:  # compared while the records were checked, if it matches
        comparing = state["validation_dups_comparing"] = (
            cache_key, door.compare_duplicates(who, job_id, threshold, against_history))
    state["validation_dups"] = None
    if widgets.await_briefly(comparing[1], DUPLICATES_WAIT_S, waiting_text=lambda: (
            f"Comparing {info.get('total', 0):,} records for duplicates…")):
        state.pop("validation_dups_comparing", None)
        state["validation_dups_key"] = cache_key
        try:
            state["validation_dups"] = comparing[1].result()
        except Exception as exc:  # noqa: BLE001 - shown, not raised
            st.error(f"The duplicate check failed: {widgets.md_escape(type(exc).__name__)}: "
                     f"{widgets.md_escape(exc)}")
findings = state.get("validation_dups")  # batch.DuplicateFindings: pairs, groups and merge keys
pairs = findings.pairs if findings is not None else None
accepted = door.merges(who, job_id)
if pairs is not None and pairs.empty:
    st.success(f"No two records are {threshold:.1f} % or more likely the same person"
               + (" (history included)." if against_history else "."))
elif pairs is not None:
    groups = findings.groups
    within = sum(1 for g in groups if g["source"] == "upload")
    st.caption(f"{len(pairs):,} suggested pairs: {within:,} groups within this sheet, "
               f"{len(groups) - within:,} matches with history. Score = probability (%) that the two are one "
               f"person; each field's number is its weight of evidence in bits (+ for same person, − against, "
               f"empty where a record lacks the field). Group members all match each other.")
    labels = [g["label"] for g in groups]
    listed = list(range(len(groups)))
    if len(groups) > batch.GROUP_PAGE:  # thousands of groups: a page of them, or the ones with a given row
        finder = st.columns([1, 1, 2])
        row = finder[0].number_input("Find a sheet row", min_value=0, value=0, step=1, key="validation_group_row",
                                     help="Lists the groups that include this row (0: every group, a page at a time).")
        pages = -(-len(groups) // batch.GROUP_PAGE)
        page = finder[1].number_input(f"Page of groups (of {pages:,})", 1, pages, 1, disabled=bool(row),
                                      key=f"validation_group_page_{len(groups)}")
        listed = batch.group_positions(labels, int(row), int(page))
        if not listed:
            finder[2].caption(f"No group includes row {int(row):,}: showing page {int(page):,}.")
            listed = batch.group_positions(labels, None, int(page))
    options = [labels[position] for position in listed]
    if state.get("validation_group") not in options:
        state["validation_group"] = options[0]
    look = st.selectbox("Look at", options, key="validation_group")
    group = groups[listed[options.index(look)] if look in options else listed[0]]
    st.dataframe(group["records"], width="stretch")
    weight_columns = [c for c in DUPLICATE_FIELDS if c in group["pairs"].columns and group["pairs"][c].notna().any()]
    st.dataframe(group["pairs"][["left_row", "right_row", "score", *weight_columns]], hide_index=True, width="stretch",
                 column_config={"left_row": "Row", "right_row": "Matches",
                                "score": st.column_config.NumberColumn("Same person %", format="%.1f"),
                                **{c: st.column_config.NumberColumn(c.replace("_", " "), format="%+.1f")
                                   for c in weight_columns}})
    with st.expander("Why these two?", expanded=True):
        for _, why in group["pairs"].iterrows():
            st.text(f"Row {why['left_row']} ~ {why['right_row']}: {why['score']:.1f} % likely the same person\n"
                    + "\n".join(f"  • {reason}" for reason in str(why["reasons"]).split("; ") if reason))

    st.markdown("**Merge suggestions**: tick the pairs that are the same person. The cleaned file keeps the first "
                "row of each merged group, fills its empty cells from the others and drops the rest.")
    keys = findings.keys
    editor_data = pairs[["left_row", "right_row", "source", "score", "reasons"]].copy()
    editor_data.insert(0, "merge", [k in accepted for k in keys])
    buttons = st.columns([1, 1, 4])
    version = state.setdefault("validation_merge_version", 0)
    if buttons[0].button("Accept all", key="validation_accept_all", icon=":material/done_all:"):
        door.save_merges(who, job_id, accepted | set(keys))
        state["validation_merge_version"] = version + 1
        st.rerun()
    if buttons[1].button("Reject all", key="validation_reject_all", icon=":material/remove_done:"):
        door.save_merges(who, job_id, accepted - set(keys))
        state["validation_merge_version"] = version + 1
        st.rerun()
    edited = st.data_editor(
        editor_data, hide_index=True, width="stretch", disabled=["left_row", "right_row", "source", "score", "reasons"],
        column_config={"merge": st.column_config.CheckboxColumn("Same person?", help="Merge these two records"),
                       "left_row": st.column_config.Column("Row"),
                       "right_row": st.column_config.Column("Matches row / history #"),
                       "score": st.column_config.ProgressColumn("Same person %", min_value=0, max_value=100,
                                                                format="%.1f")},
        key=f"validation_merge_editor_{job_id}_{threshold}_{against_history}_{version}")
    chosen = {k for k, merge in zip(keys, edited["merge"].tolist()) if merge}
    now_accepted = (accepted - set(keys)) | chosen
    if now_accepted != accepted:
        door.save_merges(who, job_id, now_accepted)
        accepted = now_accepted
    st.caption(f"{len(chosen):,} of {len(keys):,} suggested merges accepted.")

# ---------------------------------------------------------------- 5. geocoding (only with a key)
if batch.geocoding_enabled(services):
    st.subheader("Geocoding")
    addresses = door.addresses_to_geocode(who, job_id)
    geo = state.get("validation_geocode")
    if geo and geo["job"] != job_id:
        geo = None
    if st.button(f"Geocode {len(addresses):,} addresses", key="validation_geocode_start", disabled=not addresses,
                 icon=":material/travel_explore:"):
        try:
            geo = state["validation_geocode"] = {"job": job_id, "manager_job": door.start_geocoding(who, job_id)}
        except ValueError as exc:
            st.error(widgets.md_escape(exc))
    geo_running = not door.live_finished(who, geo["manager_job"] if geo else None)

    @st.fragment(run_every="1s" if geo_running else None)
    def geocode_progress() -> None:
        if not geo:
            return
        try:
            progress = door.live_progress(who, geo["manager_job"])
        except LookupError:
            return
        total = progress.total or 0
        st.progress(min(1.0, progress.fraction) if total else 1.0,
                    text=f"Geocoding: {progress.done:,} of {total:,} addresses · {progress.failed:,} failed")
        if door.live_finished(who, geo["manager_job"]) and geo_running:
            st.rerun(scope="app")

    geocode_progress()
    geocoded = door.geocode_frame(who, job_id, geo["manager_job"] if geo else None)
    if (geocoded["geocode_status"] != "not geocoded").any():
        widgets.result_table(geocoded, "spindle-geocoded", key="validation_geocoded", filter_column="geocode_status")
        located = geocoded.dropna(subset=["lat", "lng"])
        if len(located):
            st.map(located.rename(columns={"lng": "lon"})[["lat", "lon"]])

# ---------------------------------------------------------------- 6. take it home
st.subheader("Download and keep")
cleaned = memo("cleaned", (finished, frozenset(accepted)), lambda: batch.cleaned_frame(results, accepted))
problems = memo("problems", finished, lambda: door.validation_problems(who, job_id))
stem = (info.get("source") or "sheet").rsplit(".", 1)[0]
st.caption(f"The cleaned file has {len(cleaned):,} records (the sheet's columns plus status, problems and normalized "
           f"phone, e-mail and address); the problems report lists {len(problems):,} problems, one per line. "
           f"Cells that a spreadsheet would run as formulas are made plain text.")
downloads = st.columns(3)
# Every download is a callable: built when clicked, not on each rerun (~0.1 s per 10,000 rows for CSV).
downloads[0].download_button("Cleaned file (CSV)", lambda: export.to_csv_bytes(cleaned), f"{stem}-cleaned.csv", "text/csv",
                             key="validation_clean_csv", icon=":material/download:", on_click="ignore")
downloads[1].download_button("Cleaned file (Excel)", lambda: export.to_excel_bytes(cleaned, problems),
                             f"{stem}-cleaned.xlsx",
                             "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                             key="validation_clean_xlsx", icon=":material/download:", on_click="ignore")
downloads[2].download_button("Problems report (CSV)", lambda: export.to_csv_bytes(problems), f"{stem}-problems.csv",
                             "text/csv", key="validation_problems_csv", icon=":material/download:", on_click="ignore")

done_before = door.history_accepted(who, job_id)
valid = int((cleaned["status"] == "valid").sum())
if done_before:
    st.caption(f":material/history: {done_before['added']:,} valid records of this run are in history; later "
               f"uploads are checked against them.")
elif st.button(f"Accept {valid:,} valid records into history", key="validation_accept_history",
               icon=":material/history:", disabled=not valid,
               help="Later uploads' duplicate check then includes these people."):
    added = door.accept_into_history(who, job_id, accepted)
    st.success(f"Added {added:,} records to history.")

draw_charts()  # last: see chart_slots
