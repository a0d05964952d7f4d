"""The Validation page's batch flow on real files: durable job, results table, duplicates, merges, history, geocoding."""
from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pandas as pd
import pytest

from config.settings import load_settings
from streamlit_app.validation import batch, charts, export
from streamlit_app.validation.records import SheetError, guess_columns, list_sheets, read_sheet
from streamlit_app.validation.sample_data import sample_sheet
from tests.fixtures.geocode_server import TEST_API_KEY, ServerConfig, geocode_server  # noqa: F401 (fixture)
from utils.services import open_services
from utils.task_registry import task
from utils.threading_manager import ThreadingManager

DATA = Path(__file__).resolve().parent / "data" / "validation"
SAME_TABLE_FILES = ["good.csv", "utf8_bom.csv", "latin1.csv", "utf16.csv", "semicolon.csv", "pipe.csv", "two_sheets.xlsx"]


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    """One manager for the module: its process pool starts once."""
    manager = ThreadingManager()
    opened = open_services(load_settings({"SPINDLE_DATA_DIR": str(tmp_path_factory.mktemp("validation"))}),
                           manager=manager)
    yield opened
    manager.shutdown(cancel_futures=True)
    opened.close()


@pytest.fixture(scope="module")
def sample_run(services):
    """The 200-row sample sheet validated once: (sheet, job id)."""
    sheet = sample_sheet()
    job_id = run(services, "sample-owner", sheet, source="sample.csv")
    return sheet, job_id


def run(services, owner: str, sheet: pd.DataFrame, source: str = "upload.csv", mapping: dict | None = None,
        **options) -> str:
    mapping = mapping or guess_columns(sheet)
    records = batch.prepare_records(sheet, mapping)
    job_id = batch.start_validation(services, owner, records, {"source": source, "mapping": mapping,
                                                               "columns": list(sheet.columns), **options})
    status = services.queue.wait(job_id, timeout=120)
    assert status["status"] == "completed", status
    return job_id


def by_name(results: pd.DataFrame) -> pd.DataFrame:
    return results.set_index("Name")


# ------------------------------------------------------------------ the run and its table

def test_sample_sheet_gives_one_row_per_record_with_planted_problems_found(services, sample_run):
    sheet, job_id = sample_run
    results = batch.results_frame(services, job_id)
    assert len(results) == len(sheet) == 200
    assert results["row"].tolist() == list(sheet.index)
    assert list(results.columns[:10]) == ["row", *sheet.columns]
    for column in ("status", "problems", "phone_status", "phone_reason", "phone_e164", "email_status",
                   "email_reason", "email_normalized", "address_status", "address_reason", "address_normalized"):
        assert column in results.columns
    assert set(results["status"]) <= {"valid", "invalid"}  # nothing failed
    planted = sheet.attrs["planted"]
    indexed = results.set_index("row")
    assert (indexed.loc[planted["phone"], "phone_status"] == "invalid").all()
    assert (indexed.loc[planted["email"], "email_status"] == "invalid").all()
    assert (indexed.loc[planted["address"], "address_status"] != "complete").all()
    assert (indexed.loc[planted["po_box"], "address_status"] == "complete").all()
    bad = set(planted["phone"]) | set(planted["email"]) | set(planted["address"])
    assert (indexed.loc[sorted(bad), "status"] == "invalid").all()
    assert indexed.loc[planted["phone"][0], "phone_reason"]  # a reason, not just a verdict
    valid = results[results["status"] == "valid"]
    assert valid["phone_e164"].str.startswith("+1").all() and (valid["problems"] == "").all()

    counts = batch.running_counts(services, job_id)
    assert counts == {"valid": len(valid), "invalid": 200 - len(valid), "failed": 0, "pending": 0}
    info = batch.job_info(services, job_id)
    assert (info["source"], info["total"], info["columns"]) == ("sample.csv", 200, list(sheet.columns))


def test_the_same_batch_submitted_again_is_the_same_job(services, sample_run):
    sheet, job_id = sample_run
    records = batch.prepare_records(sheet, guess_columns(sheet))
    again = batch.start_validation(services, "sample-owner", records, {"source": "sample.csv",
                                                                      "mapping": guess_columns(sheet),
                                                                      "columns": list(sheet.columns)})
    assert again == job_id


@pytest.mark.parametrize("name", SAME_TABLE_FILES)
def test_real_files_in_every_flavour_give_the_same_verdicts(services, name):
    data = (DATA / name).read_bytes()
    sheets = list_sheets(data, name)
    sheet = read_sheet(data, name, sheets[0] if sheets else None)
    results = by_name(batch.results_frame(services, run(services, f"owner-{name}", sheet, source=name)))
    assert results.loc["José Álvarez", "status"] == "valid"  # accents survive every encoding
    assert results.loc["Zoë Müller", "phone_e164"] == "+12127365000"
    assert results.loc["Bad Phone", "phone_status"] == "invalid"
    assert results.loc["Bad Email", "email_status"] == "invalid"
    assert results.loc["Wrong State", "address_status"] == "mismatch"
    assert results.loc["Wrong State", "problems"].startswith("address:")
    assert results.loc["Peña Niño", "address_status"] == "complete"  # a PO box is a fine address


def test_a_workbook_sheet_is_chosen_by_name(services):
    data = (DATA / "two_sheets.xlsx").read_bytes()
    assert list_sheets(data, "two_sheets.xlsx") == ["Requests", "Staff"]
    staff = read_sheet(data, "two_sheets.xlsx", "Staff")
    results = batch.results_frame(services, run(services, "owner-staff", staff, source="two_sheets.xlsx"))
    assert results["Staff Name"].tolist() == ["Ann Librarian", "Bob Porter"]
    assert (results["status"] == "invalid").all()  # no phone, e-mail or address to check


def test_ragged_rows_and_missing_columns_become_missing_fields_not_errors(services):
    sheet = read_sheet((DATA / "empty_rows_missing_columns.csv").read_bytes(), "empty_rows_missing_columns.csv")
    results = by_name(batch.results_frame(services, run(services, "owner-ragged", sheet)))
    assert list(results.index) == ["Ann Short", "Only Name", "Ben Middle", "Cy Last"]
    assert (results["email_status"] == "missing").all()
    assert results.loc["Only Name", "phone_status"] == "missing"
    assert results.loc["Ann Short", "phone_status"] == "valid"


def test_a_corrected_mapping_is_what_gets_checked(services):
    sheet = read_sheet((DATA / "good.csv").read_bytes(), "good.csv")
    mapping = guess_columns(sheet) | {"phone": None, "email": "Phone"}  # a person's choices, wrong on purpose
    results = batch.results_frame(services, run(services, "owner-mapping", sheet, mapping=mapping))
    assert (results["phone_status"] == "missing").all()
    assert (results["email_status"] == "invalid").all()  # phone numbers are not e-mail addresses
    assert batch.job_info(services, "no-such-job") == {}


@pytest.mark.parametrize("name, message", [
    ("empty.csv", "the file is empty"),
    ("garbage.csv", "binary file"),
    ("header_only.csv", "no data rows"),
    ("truncated.xlsx", "damaged or truncated"),
])
def test_broken_sheets_are_refused_with_a_message_naming_the_file(name, message):
    with pytest.raises(SheetError) as error:
        data = (DATA / name).read_bytes()
        list_sheets(data, name)
        read_sheet(data, name)
    assert name in str(error.value) and message in str(error.value)


def test_nothing_to_validate_is_refused(services):
    with pytest.raises(ValueError, match="no records"):
        batch.start_validation(services, "owner-empty", [], {})


# ------------------------------------------------------------------ downloads

def test_cleaned_file_and_problems_report_are_formula_safe(services):
    sheet = read_sheet((DATA / "good.csv").read_bytes(), "good.csv")
    sheet.loc[sheet.index[0], "Book Title"] = '=HYPERLINK("http://evil.example","x")'
    job_id = run(services, "owner-export", sheet)
    cleaned = batch.cleaned_frame(batch.results_frame(services, job_id))
    assert {"merged_rows", "history_match", "phone_e164", "email_normalized", "address_normalized"} <= set(cleaned)
    assert "phone_status" not in cleaned.columns  # verdict details stay in the results table
    back = pd.read_csv(io.BytesIO(export.to_csv_bytes(cleaned)), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert len(back) == len(sheet)
    assert back.loc[0, "Book Title"].startswith("'=HYPERLINK")
    problems = batch.problems_frame(services, job_id)
    assert list(problems.columns) == ["row", "field", "problem"]
    assert ("phone" in problems["field"].tolist()) and ("e-mail" in problems["field"].tolist())
    assert problems["row"].is_monotonic_increasing
    workbook = pd.read_excel(io.BytesIO(export.to_excel_bytes(cleaned, problems)), sheet_name=None)
    assert set(workbook) == {"Results", "Problems"} and len(workbook["Problems"]) == len(problems)


# ------------------------------------------------------------------ duplicates, merges, history

def test_planted_duplicates_are_found_and_shown_side_by_side(services, sample_run):
    sheet, job_id = sample_run
    pairs = batch.duplicates_for(services, job_id, against_history=False)
    found = {tuple(sorted((int(a), int(b)))) for a, b in zip(pairs["left_row"], pairs["right_row"])}
    assert found == set(sheet.attrs["planted"]["duplicates"])
    assert (pairs["source"] == "upload").all() and pairs["score"].is_monotonic_decreasing
    groups = batch.duplicate_groups(services, job_id, pairs)
    assert len(groups) == len(found)
    first = groups[0]
    assert list(first["records"].index) == ["Name", "Phone", "E-mail", "Address", "Date of birth"]
    assert len(first["records"].columns) == 2 and first["records"].columns[0].startswith("row ")
    assert len(first["pairs"]) == 1 and first["pairs"]["score"].iloc[0] >= 78
    beyond = batch.duplicates_for(services, job_id, threshold=100.1, against_history=False)
    assert beyond.empty  # the threshold (a match probability in %) reaches the duplicate finder


def test_accepted_merges_shape_the_cleaned_file_and_survive_a_reload(services, sample_run):
    sheet, job_id = sample_run
    pairs = batch.duplicates_for(services, job_id, against_history=False)
    keys = [batch.pair_key(p) for p in pairs.to_dict("records")]
    batch.save_merges(services, job_id, keys[:3])
    assert batch.load_merges(services, job_id) == set(keys[:3])  # from the store, not the session
    results = batch.results_frame(services, job_id)
    cleaned = batch.cleaned_frame(results, batch.load_merges(services, job_id))
    assert len(cleaned) == len(results) - 3
    merged = cleaned[cleaned["merged_rows"] != ""]
    assert len(merged) == 3
    for pair in pairs.head(3).to_dict("records"):
        keeper, gone = sorted((int(pair["left_row"]), int(pair["right_row"])))
        assert str(gone) in merged.set_index("row").loc[keeper, "merged_rows"]
        assert gone not in cleaned["row"].tolist()
    # the keeper's empty cells are filled from the row merged into it
    filled = batch.cleaned_frame(results.assign(Email=lambda f: f["Email"].where(f["row"] != merged["row"].iloc[0], "")),
                                 batch.load_merges(services, job_id))
    assert filled.set_index("row").loc[merged["row"].iloc[0], "Email"] != ""
    batch.save_merges(services, job_id, [])
    assert batch.load_merges(services, job_id) == set()


def test_history_round_trip_later_uploads_are_checked_against_it(services):
    sheet = sample_sheet(n=60, seed=99)
    first = run(services, "owner-history", sheet, source="first.csv")
    valid = int((batch.results_frame(services, first)["status"] == "valid").sum())
    before = batch.history_size(services)
    added = batch.accept_into_history(services, first)
    assert 0 < added <= valid  # merged-away rows would be left out; none were accepted here
    assert batch.history_size(services) == before + added
    assert batch.history_version(services) > 0
    assert batch.accept_into_history(services, first) == 0  # once per job
    assert batch.history_accepted(services, first)["added"] == added
    # the job's own records are not duplicates of themselves
    own = batch.duplicates_for(services, first, against_history=True)
    assert (own["source"] == "upload").all()

    later = run(services, "owner-history", sheet.iloc[:20], source="later.csv")
    pairs = batch.duplicates_for(services, later, against_history=True)
    matched = pairs[pairs["source"] == "history"]
    assert len(matched) >= 10  # valid people seen before are found again
    assert set(matched["score"]) and matched["score"].min() >= 78
    groups = [g for g in batch.duplicate_groups(services, later, pairs) if g["source"] == "history"]
    assert groups and groups[0]["records"].columns[1].startswith("history #")
    assert "first.csv" in groups[0]["label"]
    without = batch.duplicates_for(services, later, against_history=False)
    assert (without["source"] == "upload").all()


def test_duplicates_started_with_the_job_match_the_ones_computed_after_it(services):
    """The page starts the duplicate check with the job (it needs only the records): same pairs as after the job,
    and a check started before history changed is not used once it has."""
    sheet = sample_sheet(n=120, seed=31)
    records = batch.prepare_records(sheet, guess_columns(sheet))
    job_id = batch.start_validation(services, "owner-prefetch", records, {"source": "early.csv"})
    batch.prefetch_duplicates(services, job_id, records, 90.0, against_history=False, owner="owner-prefetch")
    assert services.queue.wait(job_id, timeout=120)["status"] == "completed"
    early = batch.duplicates_for(services, job_id, 90.0, against_history=False, owner="owner-prefetch")
    after = batch.duplicates_for(services, job_id, 90.0, against_history=False, owner="owner-prefetch")
    assert len(early) >= 5  # the sample sheet plants duplicates
    pd.testing.assert_frame_equal(early.reset_index(drop=True), after.reset_index(drop=True))

    batch.prefetch_duplicates(services, job_id, records, 90.0, against_history=True, owner="owner-prefetch")
    earlier = run(services, "owner-prefetch", sheet.iloc[:40], source="earlier.csv")
    assert batch.accept_into_history(services, earlier) > 0  # history changes after the check was started
    pairs = batch.duplicates_for(services, job_id, 90.0, against_history=True, owner="owner-prefetch")
    assert (pairs["source"] == "history").any()


# ------------------------------------------------------------------ geocoding, the optional second step

def test_geocoding_runs_on_threads_and_answers_are_cached_in_the_store(services, geocode_server):
    geocode_server.reset(ServerConfig(answer_all=True))
    settings = dataclasses.replace(services.settings, google_maps_api_key=TEST_API_KEY,
                                   google_maps_base_url=geocode_server.base_url, geocode_qps=50.0)
    keyed = dataclasses.replace(services, settings=settings)
    assert batch.geocoding_enabled(keyed) and not batch.geocoding_enabled(services)
    sheet = read_sheet((DATA / "good.csv").read_bytes(), "good.csv")
    job_id = run(keyed, "owner-geo", sheet)
    addresses = batch.addresses_to_geocode(keyed, job_id)
    assert len(addresses) == 6 and "350 FIFTH AVE, NEW YORK, NY 10118" in addresses

    job = batch.start_geocoding(keyed, job_id, "owner-geo")
    results = job.result(timeout=60)
    assert job.progress().backend == "thread"
    frame = batch.geocode_frame(keyed, job_id, results)
    assert len(frame) == len(sheet) and (frame["geocode_status"] == "ok").all()
    assert frame["lat"].notna().all() and frame["formatted_address"].str.endswith("USA").all()
    sent = len(geocode_server.requests)
    assert sent == len(addresses)

    assert batch.geocode_limiter(keyed) is batch.geocode_limiter(keyed)  # one limiter for every run and user
    assert batch.geocode_limiter(keyed).rate_per_s == 50.0
    again = batch.start_geocoding(keyed, job_id, "owner-geo").result(timeout=60)
    assert len(geocode_server.requests) == sent  # every answer came from the store's cache
    assert all(r["cached"] for r in again)
    assert (batch.geocode_frame(keyed, job_id)["geocode_status"] == "ok").all()  # after a reload: from the cache


# ------------------------------------------------------------------ charts

def test_summary_and_problem_charts_count_the_results(services, sample_run):
    _sheet, job_id = sample_run
    results = batch.results_frame(services, job_id)
    verdicts = charts.verdict_counts(results)
    assert list(verdicts.index) == ["Record", "Phone", "E-mail", "Address"]
    assert (verdicts.sum(axis=1) == len(results)).all()  # every record has a verdict overall and for each field
    assert len(charts.verdict_colours(verdicts)) == len(verdicts.columns)
    problems = charts.problem_counts(results)
    assert len(problems) == 10 and problems["records"].sum() >= 10  # the top ten, most frequent first
    assert list(problems["records"]) == sorted(problems["records"], reverse=True)
    assert all(name.split(":")[0] in ("Phone", "E-mail", "Address") for name in problems["problem"])
    assert charts.verdict_counts(results.iloc[0:0]).empty

    data, spec = charts.verdict_chart(verdicts)  # what the page draws, built once per run
    assert spec["encoding"]["color"]["scale"]["domain"] == [str(v) for v in verdicts.columns]
    assert spec["encoding"]["color"]["scale"]["range"] == charts.verdict_colours(verdicts)
    assert spec["encoding"]["y"]["sort"] == ["Record", "Phone", "E-mail", "Address"]
    for field, counts in verdicts.iterrows():  # every bar adds up to the field's records, nothing invented
        assert data[data["field"] == field].set_index("verdict")["records"].to_dict() == \
            {str(v): int(n) for v, n in counts.items() if n > 0}
    shown, problem_spec = charts.problem_chart(problems)
    assert shown.equals(problems) and problem_spec["encoding"]["y"]["sort"] == "-x"

    (built_verdicts, built_spec), (built_problems, _spec) = batch.finished_charts(services, job_id)
    assert built_verdicts.equals(data) and built_spec == spec  # counted with the tables, off the page
    assert built_problems.equals(problems)


SECRET = "hunter2-checks"


@task("test.validation.unreachable")
def unreachable_checker(item: dict, params: dict) -> dict:
    """A checker whose service is down: its error quotes a connection string, password included."""
    raise ValueError(f"could not reach postgresql://spindle:{SECRET}@db.example/checks for row {item['row']}")


def test_a_record_that_could_not_be_checked_shows_why_without_the_password(services):
    sheet = sample_sheet(n=20, seed=5).head(4)
    mapping = guess_columns(sheet)
    job_id = services.queue.submit_batch(
        "test.validation.unreachable", batch.prepare_records(sheet, mapping), owner="secret-owner", kind=batch.KIND,
        params={"source": "down.csv", "mapping": mapping, "columns": list(sheet.columns)}, exec_kind="thread")
    assert services.queue.wait(job_id, timeout=60)["status"] == "completed"
    results, problems = batch.results_frame(services, job_id), batch.problems_frame(services, job_id)
    assert list(results["status"]) == ["failed"] * 4
    assert all(text.startswith("could not reach postgresql://spindle:") and text.endswith(f"for row {row}")
               for text, row in zip(results["problems"], results["row"]))
    assert list(problems["field"]) == ["record"] * 4
    assert SECRET not in results.to_csv() + problems.to_csv() + export.to_csv_bytes(problems).decode()


def test_a_big_sheet_is_compared_in_a_worker_process_with_the_same_pairs(services, monkeypatch):
    """Past COMPARE_IN_PROCESS_RECORDS the comparison leaves the server process (it held up every progress poll
    there); the pairs are the ones a thread finds."""
    sheet = sample_sheet(n=120, seed=37)
    records = batch._records_frame(batch.prepare_records(sheet, guess_columns(sheet)))
    in_thread = batch._compare_for_duplicates(services, "job-big", records, 90.0, False, "owner-big").result(120)
    monkeypatch.setattr(batch, "COMPARE_IN_PROCESS_RECORDS", 100)
    in_process = batch._compare_for_duplicates(services, "job-big", records, 90.0, False, "owner-big").result(120)
    compared = [job for job in services.manager.jobs(owner="owner-big") if job.name == "validation duplicates"]
    assert {(job.pool, job.backend) for job in compared} == {("analytics", "thread"), ("cpu", "process")}
    assert len(in_process) >= 5
    pd.testing.assert_frame_equal(in_thread.reset_index(drop=True), in_process.reset_index(drop=True))
