"""Sample data is realistic, deterministic and honest about what it planted."""
from __future__ import annotations

import pytest

from streamlit_app.validation.phones import check_phone
from streamlit_app.validation.records import guess_columns
from streamlit_app.validation.sample_data import labelled_duplicate_set, sample_phone_numbers, sample_sheet


def test_same_seed_same_data_other_seed_other_data():
    assert sample_sheet(100).equals(sample_sheet(100))
    assert not sample_sheet(100, seed=1).equals(sample_sheet(100, seed=2))
    a, pairs_a = labelled_duplicate_set(500, 0.1, seed=3)
    b, pairs_b = labelled_duplicate_set(500, 0.1, seed=3)
    assert a.equals(b) and pairs_a == pairs_b


def test_sample_sheet_columns_are_recognised():
    sheet = sample_sheet()
    assert len(sheet) == 200 and sheet.index[0] == 2
    mapping = guess_columns(sheet)
    assert {role: mapping[role] for role in ("name", "phone", "email", "street", "city", "state", "zip", "dob")} == {
        "name": "Name", "phone": "Phone", "email": "Email", "street": "Street Address", "city": "City",
        "state": "State", "zip": "ZIP", "dob": "Date of Birth"}
    assert "Book Title" in sheet.columns


def test_planted_rows_exist_and_do_not_overlap():
    planted = sample_sheet().attrs["planted"]
    assert len(planted["phone"]) == len(planted["email"]) == len(planted["address"]) == 5
    assert len(planted["duplicates"]) == 10
    singles = planted["phone"] + planted["email"] + planted["address"] + planted["po_box"]
    assert len(set(singles)) == len(singles)
    assert all(2 <= row <= 201 for row in singles)


def test_labelled_pairs_point_at_real_rows_and_match_the_duplicate_rate():
    df, pairs = labelled_duplicate_set(2000, dup_rate=0.1, seed=4)
    assert len(df) == 2000 and set(df.index) == set(range(2, 2002))
    assert all(a < b and a in df.index and b in df.index for a, b in pairs)
    assert 200 <= len(pairs) <= 260  # 200 re-entries; a person entered 3 times makes 3 pairs


def test_generated_phones_are_real_us_numbers():
    sheet = sample_sheet()
    planted = set(sheet.attrs["planted"]["phone"])
    phones = [p for row, p in sheet["Phone"].items() if row not in planted and p]
    assert all(check_phone(p, "US")["valid"] for p in phones)


def test_phone_benchmark_input_has_the_asked_share_of_invalid_numbers():
    numbers = sample_phone_numbers(2000, invalid_rate=0.05)
    invalid = sum(not check_phone(n, "US")["valid"] for n in numbers)
    assert 60 <= invalid <= 140


@pytest.mark.parametrize("kwargs", [{"n": 1}, {"n": 100, "dup_rate": 1.5}])
def test_bad_sizes_are_refused(kwargs):
    with pytest.raises(ValueError):
        labelled_duplicate_set(**kwargs)
