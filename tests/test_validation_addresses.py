"""Offline US address verdicts: complete, incomplete, unparseable, mismatch."""
from __future__ import annotations

import pytest

from streamlit_app.validation.addresses import check_address


def _record(street="123 Main Street Apt 4", city="Springfield", state="IL", zip="62701", **extra):
    return {"street": street, "city": city, "state": state, "zip": zip, **extra}


def test_complete_address_is_normalised_to_usps_style():
    result = check_address(_record())
    assert result["status"] == "complete" and result["valid"]
    assert result["normalized"] == "123 MAIN ST APT 4, SPRINGFIELD, IL 62701"
    assert (result["street"], result["unit"], result["zip"]) == ("123 MAIN ST", "APT 4", "62701")


def test_single_line_addresses_work_too():
    assert check_address("1600 Pennsylvania Avenue NW, Washington, DC 20500")["normalized"] == (
        "1600 PENNSYLVANIA AVE NW, WASHINGTON, DC 20500")
    assert check_address({"address": "77 Mass Ave, Cambridge MA 02139"})["status"] == "complete"


@pytest.mark.parametrize("record, missing", [
    (_record(zip=""), "missing ZIP code"),
    (_record(city="", state="", zip=""), "missing city, state and ZIP code"),
    (_record(street="Main Street"), "missing house number"),
    (_record(street=""), "missing house number and street"),
    ({"street": "", "city": "", "state": "", "zip": ""}, "missing the whole address"),
])
def test_incomplete_addresses_name_what_is_missing(record, missing):
    result = check_address(record)
    assert result["status"] == "incomplete" and not result["valid"]
    assert result["reason"] == missing


@pytest.mark.parametrize("record, reason", [
    (_record(street="123 Main St", city="Boston", state="CA", zip="10001"), "ZIP 10001 is in NY, not CA"),
    (_record(city="Springfeld"), "ZIP 62701 is Springfield, IL, not Springfeld"),
    (_record(zip="00000"), "ZIP 00000 is not a known US ZIP code"),
    (_record(zip="627"), "ZIP 627 is not a 5-digit US ZIP code"),
    (_record(zip="6270A"), "is not a 5-digit US ZIP code"),
])
def test_zip_that_does_not_belong_to_the_city_or_state_is_a_mismatch(record, reason):
    result = check_address(record)
    assert result["status"] == "mismatch"
    assert reason in result["reason"]


def test_other_names_for_a_city_and_state_names_are_accepted():
    assert check_address(_record(street="20 W 34th St", city="Manhattan", state="New York", zip="10001"))["status"] == "complete"
    assert check_address(_record(street="1 Infinite Loop", city="Cupertino", state="California", zip="95014-2083"))["normalized"] == (
        "1 INFINITE LOOP, CUPERTINO, CA 95014")


def test_zip_that_lost_its_leading_zero_in_excel_is_restored():
    result = check_address(_record(street="77 Massachusetts Ave", city="Cambridge", state="MA", zip="2139"))
    assert result["status"] == "complete" and result["zip"] == "02139"


def test_po_box_is_a_complete_mailing_address_though_scourgify_refuses_it():
    result = check_address(_record(street="P.O. Box 55"))
    assert result["status"] == "complete" and result["po_box"]
    assert result["normalized"] == "PO BOX 55, SPRINGFIELD, IL 62701"
    assert result["reason"] == "PO box"


@pytest.mark.parametrize("text, reason", [
    ("hello world", "does not read as a postal address"),
    ("John Smith, 123 Main St, Springfield IL 62701", "a name (John Smith) is mixed into the address"),
    ("123 Main St, 456 Oak Ave, Springfield, IL 62701", "cannot tell the parts of this address apart (two values "
                                                        "for the house number)"),
])
def test_unparseable_text_is_explained(text, reason):
    result = check_address(text)
    assert result["status"] == "unparseable"
    assert reason in result["reason"]


def test_non_us_addresses_are_not_judged():
    result = check_address(_record(street="10 Downing St", city="London", state="", zip="SW1A 2AA", country="UK"))
    assert result["status"] == "not_checked" and "US addresses only" in result["reason"]
    assert check_address(_record(country="USA"))["status"] == "complete"
