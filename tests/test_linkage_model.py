"""The linkage model underneath duplicate finding: column roles, blocking recall, what EM learns without labels."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from streamlit_app.validation import linkage
from streamlit_app.validation.linkage_fields import birth_date, concat_fields, prepare_fields, street_tokens
from streamlit_app.validation.nicknames import same_person_name
from streamlit_app.validation.records import guess_columns
from streamlit_app.validation.sample_data import labelled_duplicate_set

FEBRL_HEADERS = ["rec_id", "given_name", "surname", "street_number", "address_1", "address_2", "suburb", "postcode",
                 "state", "date_of_birth", "soc_sec_id"]


def test_febrl_headers_are_recognised_and_the_record_key_is_not_an_identifier():
    mapping = guess_columns(pd.DataFrame(columns=FEBRL_HEADERS))
    assert {role: column for role, column in mapping.items() if column} == {
        "first_name": "given_name", "last_name": "surname", "house_number": "street_number", "street": "address_1",
        "address_2": "address_2", "city": "suburb", "zip": "postcode", "state": "state", "dob": "date_of_birth",
        "identifier": "soc_sec_id",
    }


@pytest.mark.parametrize("header", ["SSN", "Customer No.", "Member ID", "Loyalty card number", "Patient ID"])
def test_identifier_like_columns_are_recognised(header):
    mapping = guess_columns(pd.DataFrame(columns=["Name", "Phone", header, "ID"]))
    assert mapping["identifier"] == header and mapping["phone"] == "Phone"


def test_a_column_of_codes_is_taken_for_an_identifier_but_a_running_number_is_not():
    codes = pd.DataFrame({"Name": ["Ann Lee", "Bo Ray", "Cy Dunn", "Di Fox", "Ed Hay", "Flo Ng"],
                          "Ref": ["AB-204113", "AB-377120", "CK-100934", "AB-204113", "ZZ-555012", "CK-778301"]})
    assert guess_columns(codes)["identifier"] == "Ref"
    running = codes.assign(Ref=[str(n) for n in range(1001, 1007)])
    assert guess_columns(running)["identifier"] is None


def test_row_keys_and_numbers_of_places_or_requests_are_not_a_persons_identifier():
    columns = ["id", "Name", "Row ID", "record_id", "Apartment No", "Order number", "ISBN"]
    assert guess_columns(pd.DataFrame(columns=columns))["identifier"] is None


def test_fields_are_normalised_so_that_formats_do_not_matter():
    assert birth_date("1980-02-03") == birth_date("02/03/1980") == birth_date("19800203") == "19800203"
    assert birth_date("25/12/1980") == "19801225"  # the first part cannot be a month: day first
    assert street_tokens("350", "Fifth Avenue", "#4") == street_tokens("350 5th Ave. Apt 4") == "350 5th ave apt 4"
    assert same_person_name("bill", "william") and same_person_name("peggy", "margaret")
    assert not same_person_name("bill", "robert")


def test_blocking_keeps_the_true_pairs_and_few_others():
    df, truth = labelled_duplicate_set(3000, 0.1, seed=41)
    fields = prepare_fields(df)
    first_row = int(df.index[0])
    positions = [(a - first_row, b - first_row) for a, b in truth]
    assert linkage.blocking_recall(fields, len(df), positions) >= 0.995
    i, _j = linkage.candidate_pairs(fields, len(df))
    assert len(i) < 20 * len(df)


def test_blocking_pairs_the_upload_with_history_but_not_history_with_itself():
    df, _truth = labelled_duplicate_set(600, 0.1, seed=42)
    upload, history = prepare_fields(df.iloc[:300]), prepare_fields(df.iloc[300:])
    i, j = linkage.candidate_pairs(concat_fields([upload, history]), 300)
    assert len(i) and (i < 300).all() and (i < j).all() and (j >= 300).any()


def test_em_learns_from_an_unlabelled_sheet_that_shared_identifiers_mean_one_person():
    df, truth = labelled_duplicate_set(1500, 0.1, seed=43)
    person = {row: row for row in df.index}
    for a, b in sorted(truth):
        person[b] = person[a]
    rng = np.random.default_rng(0)
    numbers = {p: f"{n:08d}" for p, n in zip(sorted(set(person.values())), rng.permutation(10**6))}
    df = df.assign(ssn=[numbers[person[row]] for row in df.index])
    fields = prepare_fields(df)
    i, j = linkage.candidate_pairs(fields, len(df))
    levels, _swapped = linkage.compare_in_chunks(fields, i, j)
    model = linkage.fit(fields, len(df), levels)
    assert model.level_weights("identifier")[0] > 10  # same identifier: strong evidence
    assert model.level_weights("identifier")[-1] < -4  # different identifier: strong evidence against
    assert model.level_weights("first_name")[0] > 0 > model.level_weights("first_name")[-1]
    expected_duplicates = 2 ** model.prior_weight * len(df) * (len(df) - 1) / 2
    assert 0.5 * len(truth) < expected_duplicates < 2 * len(truth)  # the share of duplicates, learnt not told


def test_explanations_put_weights_into_words():
    assert linkage.strength(12) == "very strong" and linkage.strength(3) == "moderate"
    assert linkage.strength(-6) == "against, strong" and linkage.strength(0.1) == "no real evidence"
    text = linkage.explain({"dob": 0, "last_name": 1, "email": -1}, {"dob": 9.0, "last_name": 3.2, "email": 0.0},
                           swapped=False)
    assert text == "same date of birth: strong; surname differs by one letter: moderate"
