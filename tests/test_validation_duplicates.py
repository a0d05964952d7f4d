"""Duplicate people: the mistakes people make are found, different people are kept apart, groups do not chain.

Each error case plants one re-entered person in a sheet of a few hundred
made-up people (so the model has data to learn m and u from, as on a real
upload) and checks that exactly the planted pair is suggested, with words
saying why.
"""
from __future__ import annotations

import pandas as pd
import pytest

from streamlit_app.validation.duplicates import (
    DEFAULT_THRESHOLD,
    MAX_BLOCK,
    PAIR_COLUMNS,
    cluster_pairs,
    find_duplicates,
)
from streamlit_app.validation.sample_data import labelled_duplicate_set, sample_sheet

COLUMNS = ["first_name", "last_name", "phone", "email", "house_number", "street", "city", "state", "zip", "dob",
           "customer_no"]
BACKGROUND_ROWS = 400


@pytest.fixture(scope="module")
def background() -> pd.DataFrame:
    """Other people (and their own re-entries) that the planted records sit among."""
    df, _truth = labelled_duplicate_set(BACKGROUND_ROWS, dup_rate=0.1, seed=31)
    return df.assign(house_number="", customer_no="")[COLUMNS]


@pytest.fixture(scope="module")
def customers(background) -> pd.DataFrame:
    """The background with customer numbers: one per person, so re-entries carry their original's number."""
    _df, truth = labelled_duplicate_set(BACKGROUND_ROWS, dup_rate=0.1, seed=31)
    number = {row: row for row in background.index}
    for a, b in sorted(truth):
        number[b] = number[a]
    return background.assign(customer_no=[f"C-{number[row]:07d}" for row in background.index])


def _sheet(background: pd.DataFrame, *rows: dict) -> tuple[pd.DataFrame, list[int]]:
    """background + rows (missing fields empty); returns the sheet and the planted rows' numbers."""
    planted = pd.DataFrame([{c: row.get(c, "") for c in COLUMNS} for row in rows], dtype=str)
    df = pd.concat([background, planted], ignore_index=True)
    df.index = pd.RangeIndex(2, len(df) + 2, name="row")
    return df, list(df.index[-len(rows):])


def _found(pairs: pd.DataFrame) -> set[tuple]:
    return {(min(a, b), max(a, b)) for a, b in zip(pairs["left_row"], pairs["right_row"])}


def _pair(pairs: pd.DataFrame, a: int, b: int) -> pd.Series | None:
    left, right = pairs["left_row"], pairs["right_row"]
    hit = pairs[((left == a) & (right == b)) | ((left == b) & (right == a))]
    return None if hit.empty else hit.iloc[0]


ANN = {"first_name": "Annabel", "last_name": "Okonkwo", "phone": "(217) 544-1234", "email": "annabel.ok@gmail.com",
       "street": "123 Juniper Street", "city": "Springfield", "state": "IL", "zip": "62701", "dob": "1980-02-03"}


def _planted_pair_is_found(background: pd.DataFrame, first: dict, second: dict, *words: str) -> pd.Series:
    df, (a, b) = _sheet(background, first, second)
    pairs = find_duplicates(df)
    pair = _pair(pairs, a, b)
    assert pair is not None, f"rows {a} and {b} were not suggested"
    assert pair["score"] >= DEFAULT_THRESHOLD
    for word in words:
        assert word in pair["reasons"], pair["reasons"]
    assert not any(a in p or b in p for p in _found(pairs) - {(a, b)}), "the planted people matched someone else"
    return pair


# --------------------------------------------------------------------------- the mistakes people make

def test_swapped_first_name_and_surname(background):
    swapped = dict(ANN, first_name="Okonkwo", last_name="Annabel", phone="", email="")
    _planted_pair_is_found(background, ANN, swapped, "given name and surname swapped")


def test_day_and_month_swapped_in_the_date_of_birth(background):
    other = dict(ANN, dob="1980-03-02", email="", phone="217 544 1234")
    _planted_pair_is_found(background, ANN, other, "day and month swapped")


def test_us_and_day_first_dates_of_one_birthday_are_the_same(background):
    other = dict(ANN, dob="02/03/1980", email="")
    _planted_pair_is_found(background, ANN, other, "same date of birth")


def test_nickname_and_formal_name(background):
    william = dict(ANN, first_name="William", last_name="Fairweather", email="")
    bill = dict(william, first_name="Bill", phone="")
    _planted_pair_is_found(background, william, bill, "nickname")


def test_house_number_in_its_own_column_or_in_the_street_line(background):
    split = dict(ANN, house_number="123", street="Juniper Street", email="")
    _planted_pair_is_found(background, ANN, split, "same street address")


def test_postcode_typo(background):
    typo = dict(ANN, zip="62710", email="", phone="")
    _planted_pair_is_found(background, ANN, typo, "postcode differs by one digit")


def test_phone_on_one_record_and_email_on_the_other(background):
    with_phone = dict(ANN, email="")
    with_email = dict(ANN, phone="")
    pair = _planted_pair_is_found(background, with_phone, with_email)
    assert pd.isna(pair["phone"]) and pd.isna(pair["email"])  # neither counts against the pair
    assert "phone" not in pair["reasons"] and "e-mail" not in pair["reasons"]


def test_typo_in_the_surname_with_the_same_phone(background):
    typo = dict(ANN, last_name="Okonkow", email="")
    _planted_pair_is_found(background, ANN, typo, "surname differs by one letter")


def test_a_shared_identifier_outweighs_a_changed_name_and_address(customers):
    # married, moved and changed e-mail: only the customer number, first name and birthday stay
    before = dict(ANN, customer_no="C-0048213")
    after = {"first_name": "Annabel", "last_name": "Whitfield", "dob": "1980-02-03", "customer_no": "C-0048213",
             "street": "9 Larch Avenue", "city": "Peoria", "state": "IL", "zip": "61602"}
    pair = _planted_pair_is_found(customers, before, after, "same identifier")
    assert pair["identifier"] > 10  # bits: identifiers weigh heavily when both records have them


def test_a_different_identifier_counts_against_namesakes_with_one_birthday(customers):
    one = {"first_name": "James", "last_name": "Smith", "dob": "1975-05-05", "customer_no": "C-1111111"}
    other = dict(one, customer_no="C-7654321")
    df, (a, b) = _sheet(customers, one, other)
    different = _pair(find_duplicates(df, threshold=0), a, b)
    df, (a, b) = _sheet(customers.assign(customer_no=""), one, other)
    unknown = _pair(find_duplicates(df, threshold=0), a, b)
    assert different["identifier"] < -4 and "different identifier: against" in different["reasons"]
    assert different["match_weight"] < unknown["match_weight"]


def test_someone_who_moved_is_found_by_name_phone_and_birthday(background):
    moved = dict(ANN, street="9 Larch Avenue", city="Peoria", zip="61602", email="")
    _planted_pair_is_found(background, ANN, moved, "same phone", "different street address")


def test_namesakes_whose_email_is_made_of_their_name_are_not_duplicates(background):
    one = {"first_name": "Barbara", "last_name": "Quist", "email": "barbara.quist@gmail.com", "phone": "701-883-9830",
           "street": "949 Magnolia Street", "city": "Roseglen", "state": "ND", "zip": "58775", "dob": "1964-08-03"}
    two = {"first_name": "Barbara", "last_name": "Quist", "email": "barbara.quist@yahoo.com", "phone": "320-848-9446",
           "street": "4845 Riverside Road", "city": "Royalton", "state": "MN", "zip": "56373", "dob": "1991-08-11"}
    df, (a, b) = _sheet(background, one, two)
    assert _pair(find_duplicates(df), a, b) is None


def test_household_members_are_not_duplicates(background):
    janet = {"first_name": "Janet", "last_name": "Taylor", "phone": "812-569-3467", "email": "jtaylor@yahoo.com",
             "street": "1704 Grove Blvd", "city": "Evansville", "state": "IN", "zip": "47714", "dob": "1955-07-03"}
    john = dict(janet, first_name="John", email="john_taylor@yahoo.com", dob="1993-07-10")
    df, (a, b) = _sheet(background, janet, john)
    assert _pair(find_duplicates(df), a, b) is None


def test_namesakes_with_nothing_else_in_common_are_not_duplicates(background):
    one = {"first_name": "James", "last_name": "Smith", "phone": "641-211-5272", "email": "james6474@hotmail.com",
           "street": "4492 Front Pl", "city": "Clear Fork", "state": "WV", "zip": "24822", "dob": "1976-07-04"}
    two = {"first_name": "James", "last_name": "Smith", "phone": "319-555-0143", "email": "jsmith12@gmail.com",
           "street": "12 Oak St", "city": "Eddyville", "state": "IA", "zip": "52553", "dob": "1961-03-19"}
    df, (a, b) = _sheet(background, one, two)
    assert _pair(find_duplicates(df), a, b) is None


def test_explanations_name_each_field_with_its_strength(background):
    typo = dict(ANN, last_name="Okonkow", email="")
    pair = _planted_pair_is_found(background, ANN, typo)
    reasons = pair["reasons"]
    assert "same date of birth: " in reasons and "surname differs by one letter: " in reasons
    assert any(word in reasons for word in ("very strong", "strong", "moderate"))
    assert pair["match_weight"] == pytest.approx(pair["match_weight"])  # a number
    assert pair["dob"] > 0 and pair["last_name"] > 0 and pd.isna(pair["email"])


# --------------------------------------------------------------------------- measured on labelled sets

@pytest.mark.parametrize("drop", [(), ("dob",)])
def test_precision_and_recall_at_the_default_threshold(drop):
    df, truth = labelled_duplicate_set(2000, dup_rate=0.1, seed=21)
    found = _found(find_duplicates(df.drop(columns=list(drop))))
    hits = len(found & truth)
    assert hits / max(len(found), 1) >= 0.98, hits / max(len(found), 1)
    assert hits / len(truth) >= 0.93, hits / len(truth)


def test_sample_sheet_planted_duplicates_are_found_and_nothing_else():
    sheet = sample_sheet(200)
    pairs = find_duplicates(sheet)
    assert _found(pairs) == set(sheet.attrs["planted"]["duplicates"])
    assert pairs["match_weight"].is_monotonic_decreasing and (pairs["score"] >= DEFAULT_THRESHOLD).all()


def test_the_threshold_is_a_probability_and_a_lower_one_finds_more():
    df, _truth = labelled_duplicate_set(1000, 0.1, seed=5)
    every, default, certain = (find_duplicates(df, threshold=t) for t in (0, DEFAULT_THRESHOLD, 99.9))
    assert len(every) > len(default) >= len(certain) > 0
    assert every["score"].between(0, 100).all() and (default["score"] >= DEFAULT_THRESHOLD).all()
    assert (every["score"] < 1).any()  # candidate pairs that are clearly different people


# --------------------------------------------------------------------------- groups without chaining

def test_groups_join_a_person_entered_three_times(background):
    second = dict(ANN, email="", phone="217-544-1234")
    third = dict(ANN, first_name="Anabel", street="123 Juniper St")
    df, rows = _sheet(background, ANN, second, third)
    pairs = find_duplicates(df)
    assert sorted(rows) in cluster_pairs(pairs)


def test_one_borderline_record_does_not_merge_two_people():
    """A–B and B–C are confident, A–C clearly are not one person: B joins one of them, not both."""
    from streamlit_app.validation.linkage import clusters

    weights = {(1, 2): 20.0, (2, 3): 15.0, (1, 3): -12.0, (4, 5): 9.0}
    edges = [(a, b, w) for (a, b), w in weights.items() if w > 3]
    groups = clusters(edges, lambda pairs: [weights[p] for p in pairs])
    assert groups == [[1, 2], [4, 5]]
    assert clusters([], lambda pairs: []) == []


def test_chained_people_in_a_sheet_are_split(background):
    # B shares A's phone and address but C's name and birthday: A and C are not one person
    a = {"first_name": "Priya", "last_name": "Raman", "phone": "303-555-0101", "street": "77 Birch Road",
         "zip": "80301", "city": "Boulder", "state": "CO", "dob": "1990-01-15", "email": "priya.raman@gmail.com"}
    b = dict(a, email="")
    c = {"first_name": "Priya", "last_name": "Raman", "phone": "", "street": "77 Birch Rd", "zip": "80301",
         "city": "Boulder", "state": "CO", "dob": "1990-01-15", "email": ""}
    df, rows = _sheet(background, a, b, c)
    groups = [g for g in cluster_pairs(find_duplicates(df)) if set(g) & set(rows)]
    assert len(groups) == 1 and set(groups[0]) == set(rows)  # all one person: every member matches every other
    d = {"first_name": "Rohan", "last_name": "Raman", "phone": "303-555-0101", "street": "77 Birch Road",
         "zip": "80301", "city": "Boulder", "state": "CO", "dob": "1988-11-02", "email": "rohan.r@yahoo.com"}
    df, rows = _sheet(background, a, b, d)
    groups = [g for g in cluster_pairs(find_duplicates(df)) if set(g) & set(rows)]
    assert all(not {rows[0], rows[2]} <= set(g) for g in groups)  # Priya and her brother never share a group


def test_accepted_pairs_without_groups_are_joined_transitively():
    pairs = pd.DataFrame({"left_row": [2, 5, 9, 3], "right_row": [5, 7, 11, "h-1"],
                          "source": ["upload", "upload", "upload", "history"]})
    assert cluster_pairs(pairs) == [[2, 5, 7], [9, 11]]
    assert cluster_pairs(pairs.iloc[0:0]) == []


# --------------------------------------------------------------------------- history, columns, edge cases

def test_matches_against_history_use_the_history_id(background):
    upload = _sheet(background, ANN)[0]
    history = pd.DataFrame({
        "id": ["h-17", "h-18"],
        "first_name": ["Anabel", "Bob"], "last_name": ["Okonkwo", "Ray"],
        "phone": ["(217) 544-1234", "212-736-5000"], "email": ["annabel.ok@gmail.com", "bob@ray.org"],
        "street": ["123 Juniper St", "1 Elm St"], "zip": ["62701", "10118"], "dob": ["1980-02-03", "1970-01-01"],
    })
    pairs = find_duplicates(upload, history=history)
    from_history = pairs[pairs["source"] == "history"]
    assert from_history[["left_row", "right_row"]].values.tolist() == [[upload.index[-1], "h-17"]]
    assert list(pairs.columns) == PAIR_COLUMNS


def test_placeholder_values_shared_by_everyone_do_not_blow_up_the_pairs():
    from streamlit_app.validation.linkage import candidate_pairs
    from streamlit_app.validation.linkage_fields import prepare_fields

    n = MAX_BLOCK + 500
    df = pd.DataFrame({
        "first_name": [f"Person{i}" for i in range(n)], "last_name": [f"Family{i % 997}" for i in range(n)],
        "phone": ["000-000-0000"] * n, "email": ["none@none.com"] * n, "dob": ["1900-01-01"] * n,
    })
    i, _j = candidate_pairs(prepare_fields(df), n)
    assert len(i) < 5 * n  # not the n^2/2 = 1.1M pairs everyone-with-everyone


def test_mapping_lets_odd_headers_work_and_missing_columns_are_fine():
    df = pd.DataFrame({"Who": ["Ann Lee", "Lee, Ann", "Bo Ray"], "Tel": ["217-544-1234", "2175441234", "212-736-5000"]})
    pairs = find_duplicates(df, mapping={"name": "Who", "phone": "Tel"})
    assert _found(pairs) == {(2, 3)}  # 'Lee, Ann' is Ann Lee; rows count from 2 under the header


def test_empty_upload_gives_an_empty_table_with_the_columns():
    empty = pd.DataFrame(columns=COLUMNS)
    pairs = find_duplicates(empty)
    assert pairs.empty and list(pairs.columns) == PAIR_COLUMNS
