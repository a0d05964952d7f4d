"""The per-record worker function: flat results, plain problems, and safe to ship to processes."""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from streamlit_app.validation.record_check import validate_record
from streamlit_app.validation.records import guess_columns, normalise_records, read_sheet
from streamlit_app.validation.sample_data import sample_sheet

DATA = Path(__file__).resolve().parent / "data" / "validation"
GOOD = {"row": 2, "name": "Ann Lee", "phone": "(217) 544-1234", "email": "ann.lee@gmail.com",
        "street": "123 Main Street", "city": "Springfield", "state": "IL", "zip": "62701"}


def test_a_good_record_is_valid_with_normalized_values():
    result = validate_record(GOOD, {"default_region": "US"})
    assert result["status"] == "valid" and result["problems"] == []
    assert result["row"] == 2
    assert result["phone_e164"] == "+12175441234"
    assert result["email_normalized"] == "ann.lee@gmail.com"
    assert result["address_normalized"] == "123 MAIN ST, SPRINGFIELD, IL 62701"
    assert all(not isinstance(v, (dict, set)) for v in result.values())  # flat: one table row


def test_each_bad_field_becomes_a_plain_problem():
    record = dict(GOOD, phone="12345", email="ann@", state="CA")
    result = validate_record(record, {})
    assert result["status"] == "invalid"
    assert result["phone_status"] == "invalid" and result["email_status"] == "invalid"
    assert result["address_status"] == "mismatch"
    assert result["problems"] == [
        "phone: too short",
        "e-mail: There must be something after the @-sign.",
        "address: ZIP 62701 is in IL, not CA",
    ]


def test_missing_values_are_reported_only_for_checked_fields():
    record = {"row": 9, "name": "Ann", "phone": "", "email": "", "street": "", "city": "", "state": "", "zip": ""}
    assert validate_record(record, {})["problems"] == ["phone: no phone number", "e-mail: no e-mail address", "address: no address"]
    only_phone = validate_record(record, {"fields": ["phone"]})
    assert only_phone["problems"] == ["phone: no phone number"]
    assert "email_status" not in only_phone and "address_status" not in only_phone


def test_phone_details_on_request_and_default_region_used():
    result = validate_record(dict(GOOD, phone="020 7946 0958"), {"default_region": "GB", "phone_details": True})
    assert result["phone_status"] == "valid" and result["phone_region"] == "GB"
    assert result["phone_location"] == "London"
    assert "phone_location" not in validate_record(GOOD, {})


def test_unknown_field_names_are_refused():
    with pytest.raises(ValueError, match="unknown fields to check: \\['fax'\\]"):
        validate_record(GOOD, {"fields": ["phone", "fax"]})


def test_one_odd_value_does_not_sink_the_record():
    result = validate_record(dict(GOOD, phone=12345678901234567890, email=None), {})
    assert result["status"] == "invalid"
    assert result["address_status"] == "complete"


def test_the_sample_sheet_flags_exactly_what_was_planted():
    sheet = sample_sheet(200)
    planted = sheet.attrs["planted"]
    results = {r["row"]: r for r in (validate_record(rec, {}) for rec in normalise_records(sheet, guess_columns(sheet)))}
    for field, status_key in (("phone", "phone_status"), ("email", "email_status"), ("address", "address_status")):
        assert all(results[row][status_key] not in ("valid", "complete") for row in planted[field]), field
    assert results[planted["po_box"][0]]["status"] == "valid"
    duplicate_rows = {row for pair in planted["duplicates"] for row in pair}
    planted_rows = set(planted["phone"]) | set(planted["email"]) | set(planted["address"])
    unexpected = [r for row, r in results.items() if r["status"] == "invalid" and row not in planted_rows]
    # re-entered duplicates may leave a phone or e-mail out; nothing else may be flagged
    assert all(r["row"] in duplicate_rows and all("no " in p for p in r["problems"]) for r in unexpected), unexpected


def test_runs_in_worker_processes_with_the_same_results():
    df = read_sheet((DATA / "good.csv").read_bytes(), "good.csv")
    records = normalise_records(df, guess_columns(df))
    serial = [validate_record(r, {"default_region": "US"}) for r in records]
    with ProcessPoolExecutor(2) as pool:
        parallel = list(pool.map(validate_record, records, [{"default_region": "US"}] * len(records)))
    assert parallel == serial
    assert [r["status"] for r in serial] == ["valid", "valid", "invalid", "invalid", "invalid", "valid"]
