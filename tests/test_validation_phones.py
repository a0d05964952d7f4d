"""Phone checks: one canonical number whatever the format, and a plain reason when it is not a number."""
from __future__ import annotations

import pickle

import pytest

from streamlit_app.validation.phones import check_phone


@pytest.mark.parametrize("raw", ["(212) 736-5000", "212-736-5000", "212.736.5000", "2127365000",
                                 "+1 212 736 5000", "1-212-736-5000", " 212 736 5000 "])
def test_us_formats_give_the_same_e164(raw):
    result = check_phone(raw, "US")
    assert result["valid"] and result["possible"]
    assert result["e164"] == "+12127365000"
    assert result["region"] == "US"
    assert result["international"] == "+1 212-736-5000"
    assert result["reason"] == ""


@pytest.mark.parametrize("raw, reason", [
    ("", "no phone number"),
    ("   ", "no phone number"),
    ("12345", "too short"),
    ("call after 5pm", "not a phone number"),
    ("555-0199", "local number without its area code"),
    ("(123) 456-7890", "not an assigned number"),
    ("+1 212 736 50001", "too long"),
    ("+999 1234", "country code"),
])
def test_invalid_numbers_say_why_in_plain_words(raw, reason):
    result = check_phone(raw, "US")
    assert result["valid"] is False
    assert reason in result["reason"]
    assert result["e164"] == ""


def test_default_region_decides_numbers_without_country_code():
    uk = check_phone("020 7946 0958", "GB")
    assert uk["valid"] and uk["region"] == "GB" and uk["e164"] == "+442079460958"
    assert not check_phone("020 7946 0958", "US")["valid"]
    assert check_phone("+44 20 7946 0958", "US")["region"] == "GB"  # a + number ignores the default


def test_unknown_default_region_is_explained():
    result = check_phone("2127365000", "XX")
    assert not result["valid"] and "'XX' is not a known region" in result["reason"]


def test_number_type_and_extension():
    assert check_phone("+1 800 555 1212", "US")["type"] == "toll_free"
    assert check_phone("+44 7400 123456", "US")["type"] == "mobile"
    result = check_phone("650 253 0000 ext 12", "US")
    assert result["valid"] and result["extension"] == "12" and result["e164"] == "+16502530000"


def test_details_only_when_asked():
    plain = check_phone("(212) 736-5000", "US")
    assert "location" not in plain and "carrier" not in plain
    detailed = check_phone("(212) 736-5000", "US", with_details=True)
    assert detailed["location"] == "New York, NY"
    assert detailed["time_zones"] == "America/New_York"
    assert "carrier" in detailed
    assert check_phone("+44 7400 123456", "US", with_details=True)["carrier"]  # UK mobiles have carrier data


def test_check_phone_can_be_sent_to_a_worker_process():
    assert pickle.loads(pickle.dumps(check_phone))("212-736-5000", "US")["valid"]
